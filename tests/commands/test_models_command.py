"""`raypath models`: an aligned table of the cards, and the same cards as JSON."""

import json

from raypath.cli import main
from raypath.encoders import list_cards


def test_table_lists_every_real_card_in_aligned_columns(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "architecture", "hub"]
    assert [line.split()[0] for line in lines[1:]] == [card.name for card in list_cards(tiny=False)]
    column = lines[0].index("architecture")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines[1:])
    assert "MahmoodLab/UNI " in lines[1] and "cls+mean" in "".join(lines)


def test_json_with_tiny_cards(capsys):
    assert main(["models", "--json", "--tiny"]) == 0
    cards = json.loads(capsys.readouterr().out)
    names = {card["name"] for card in cards}
    assert {"uni", "virchow2", "tiny-uni", "tiny-conch"} <= names
    virchow2 = next(card for card in cards if card["name"] == "virchow2")
    assert virchow2["embed_dim"] == 2560 and virchow2["hub_id"] == "paige-ai/Virchow2"
