"""`raypath models`: the foundation-model cards as an aligned table (or JSON)."""

import argparse
import json
import sys

from raypath.encoders import ModelCard, list_cards

COLUMNS = ("name", "architecture", "hub id", "input", "dim", "mpp", "output", "licence")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the full cards as JSON")
    parser.add_argument("--tiny", action="store_true", help="also list the tiny random stand-ins")


def _row(card: ModelCard) -> tuple[str, ...]:
    return (card.name, card.architecture, card.hub_id or "-", str(card.input_size), str(card.embed_dim),
            f"{card.mpp:g}", card.output, card.licence)


def format_table(cards: list[ModelCard]) -> str:
    """Left-aligned columns padded to the widest cell."""
    rows = [COLUMNS, *(_row(card) for card in cards)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    cards = list_cards(tiny=None if args.tiny else False)
    if args.json:
        sys.stdout.write(json.dumps([card.to_dict() for card in cards], indent=2) + "\n")
    else:
        sys.stdout.write(format_table(cards))
    return 0
