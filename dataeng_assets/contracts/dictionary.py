"""Generate docs/data_dictionary.md from the contracts: the data dictionary has one source of truth.

python -m dataeng_assets.contracts.dictionary            # rewrite docs/data_dictionary.md
python -m dataeng_assets.contracts.dictionary --check    # exit 1 if it is out of date
"""

import argparse
import sys

from dataeng_assets.contracts import (
    CONTRACTS_DIR,
    Contract,
    load_contract,
    partition_column,
    platform_columns,
)

DICTIONARY_PATH = CONTRACTS_DIR.parent.parent / "docs" / "data_dictionary.md"
LAYERS = ("raw", "cleaned", "features")
ACTION_WORDS = {"drop": "quarantine", "warn": "warn", "fail": "fail"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(contract: Contract, platform: list) -> list[str]:
    lines = [
        f"### `{contract.name}`",
        "",
        contract.description or "",
        "",
        "| column | type | required | PII | description | rules (action) |",
        "|---|---|---|---|---|---|",
    ]
    for column in [*contract.columns, *platform]:
        rules = [f"`{r.id}` ({ACTION_WORDS[r.action]}): {r.description}" for r in column.rules]
        if not column.nullable and column.name not in {c.name for c in platform}:
            rules.insert(0, f"`{column.name}.not_null` (quarantine)")
        lines.append(
            f"| `{column.name}` | {column.type} | {'yes' if not column.nullable else ''} "
            f"| {'yes' if column.pii else ''} | {_cell(column.description)} | {_cell('<br>'.join(rules))} |"
        )
    if contract.unique:
        lines += ["", f"Natural key: {', '.join(f'`{c}`' for c in contract.unique)}."]
    for rule in contract.row_rules:
        lines += [
            "",
            f"Row rule `{rule.id}` ({ACTION_WORDS[rule.action]}): `{rule.expression}`: {rule.description}",
        ]
    return [*lines, ""]


def render() -> str:
    lines = [
        "# Data dictionary",
        "",
        "Generated from the contracts in `dataeng_assets/contracts/` by "
        "`python -m dataeng_assets.contracts.dictionary`; do not edit by hand (a test compares).",
        "Actions: *quarantine* moves the row to `quarantine/<source>` with the reason, *warn* keeps "
        "and counts it, *fail* stops the partition. See [quality.md](quality.md).",
        "",
    ]
    from dataeng_assets.sources import registry  # the registry says which raw tables are daily

    daily_raw = {s.contracts["raw"] for s in registry().values() if s.is_daily}
    for layer in LAYERS:
        lines += [f"## {layer}", ""]
        for path in sorted((CONTRACTS_DIR / layer).glob("*.yaml")):
            contract = load_contract(f"{layer}/{path.name}")
            platform = (
                platform_columns(raw=True) if layer == "raw"
                else platform_columns(cleaned=True) if layer == "cleaned" else []
            )  # fmt: skip
            if layer == "raw" and f"raw/{path.name}" in daily_raw:
                platform = [partition_column(), *platform]
            lines += _table(contract, platform)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataeng_assets.contracts.dictionary")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DICTIONARY_PATH.read_text(encoding="utf-8") if DICTIONARY_PATH.exists() else ""
        if current != text:
            print(
                f"{DICTIONARY_PATH} is out of date: run python -m dataeng_assets.contracts.dictionary"
            )
            return 1
        return 0
    DICTIONARY_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DICTIONARY_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
