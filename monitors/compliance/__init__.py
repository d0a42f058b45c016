"""Compliance reports: one per model version, one per period, and the regulator's question about
one decision - built from the audit records and the Delta history, never typed by hand.

Every report is first a JSON document (the machine-readable output); the HTML (self-contained:
inline CSS, the lineage graph as inline SVG) and the PDF are rendered from it. Issuing a report
writes the three files and chains a record of their SHA-256 - with the records the report was
built from - into ``audit.reports``, so ``tracelake report verify FILE`` tells whether a file was
altered after it was issued, and which record issued it.

    records.py        the records a report reads, once and without Spark (and their chain heads)
    closure.py        run-level upstream closure of runs (what a model learned from, what it served)
    model_report.py   the dossier of one registered model version, assembled from the sections of:
    model_origin.py   its identity, training data and the data quality upstream of it
    model_service.py  its serving life: performance in service, limits crossed, incidents
    model_changes.py  what changed against the version it replaced
    drift_verdicts.py drift verdicts per table and day with their Evidently reports
    lineage_graph.py  the component-level lineage graph of model and period reports
    period_report.py  everything in service in a window of days
    decision.py       which data and which model produced these rows, and what failed upstream
    integrity.py      audit verify, retention verify and chain heads, as a report section
    graph_svg.py      lineage graphs laid out by Graphviz ``dot``, as inline SVG
    render_html.py    JSON -> one self-contained HTML file
    render_pdf.py     that HTML -> PDF (WeasyPrint)
    issue.py          the ``reports`` audit table, issuing (files + hashes + record) and verifying
    cli.py            ``tracelake report model|period|decision|verify|list``

Knows no particular pipeline: model names, tables and components come from the records and the
arguments.
"""
