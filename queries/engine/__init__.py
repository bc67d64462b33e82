"""Report spec -> one SQL statement over a source -> the contract's table.

Pure: nothing here touches the database. `queries.selectors.report_run` executes
what `compile_report` returns and decodes the rows with `CompiledReport.decode`.
"""
from queries.engine.compiler import CompiledReport, Report, Scope, compile_report
from queries.engine.metrics import METRICS, Metric
from queries.engine.render import report_csv
from queries.engine.sources import SOURCES, RawEvents, Source, choose_source

__all__ = [
    "METRICS", "SOURCES", "CompiledReport", "Metric", "RawEvents", "Report", "Scope", "Source", "choose_source",
    "compile_report", "report_csv",
]
