"""Pre-aggregated tables the report engine answers from, kept exact by the fold."""
from queries.rollups.definitions import ROLLUPS, Rollup
from queries.rollups.fold import rollup_fold, rollup_rebuild, rollup_zone

__all__ = ["ROLLUPS", "Rollup", "rollup_fold", "rollup_rebuild", "rollup_zone"]
