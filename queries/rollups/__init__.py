"""Pre-aggregated tables the report engine answers from, kept exact by the fold."""
from queries.rollups.definitions import ROLLUPS, Rollup
from queries.rollups.fold import current_rows, rollup_fold, rollup_rebuild, rollup_state, unfolded_rows

__all__ = ["ROLLUPS", "Rollup", "current_rows", "rollup_fold", "rollup_rebuild", "rollup_state",
           "unfolded_rows"]
