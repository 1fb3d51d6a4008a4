"""The printed layer table against the paper's figures."""

from alexnet_jax.models import AlexNet
from alexnet_jax.summary import model_summary


def test_paper_table_lists_the_papers_shapes_and_counts():
    table = model_summary(AlexNet(1000, "paper"), 224)
    rows = {
        line.split()[0]: line.split()
        for line in table.splitlines()[3:]
        if line.strip() and not line.startswith(" ")
    }
    assert rows["conv1"][1:3] == ["55x55x96", "34,944"]
    assert rows["conv2"][1:3] == ["27x27x256", "307,456"]
    assert rows["conv3"][1:3] == ["13x13x384", "885,120"]
    assert rows["conv5"][1:3] == ["13x13x256", "442,624"]
    assert rows["fc6"][1:3] == ["4096", "37,752,832"]
    assert rows["fc8"][1:3] == ["1000", "4,097,000"]
    assert rows["total"][1] == "60,965,224"
    assert "2 x 5x5x48x128" in table  # conv2: each tower sees its own 48 maps
    pools = [line.split()[1] for line in table.splitlines() if line.strip().startswith("pool")]
    assert pools == ["27x27x96", "13x13x256", "6x6x256"]
