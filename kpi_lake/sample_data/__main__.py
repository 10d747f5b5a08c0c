"""Command line: ``python -m kpi_lake.sample_data LANDING_DIR [--scale N] [--seed S]``."""

from __future__ import annotations

import argparse
import sys

from kpi_lake.sample_data import DEFAULT_SEED, FAMILIES, generate_landing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kpi_lake.sample_data",
        description="Write a deterministic sample landing zone for Kestrelford City Council.",
    )
    parser.add_argument("landing_dir", help="folder to write <family>/ sub-folders into")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="row-count multiplier (1 = about 50,000 business rows)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    args = parser.parse_args(argv)
    story = generate_landing(args.landing_dir, scale=args.scale, seed=args.seed)
    for family in FAMILIES:
        files = story.files_of(family)
        print(f"{family:<17} {len(files):>3} files {story.family_rows.get(family, 0):>12,} rows")
    print(
        f"{len(story.mismatches)} deliberate SPAR.net mismatches; council {story.council_code} {story.council_name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
