"""OpenLineage both ways: every component run published as standard events, and runs of other
producers (a ``spark-submit`` job with the OpenLineage Spark listener) joined to the audit graph.

    ids          Tracelake run id <-> OpenLineage run id (derived one way, recorded the other)
    naming       dataset namespace/name <-> table location, as the Spark listener names them
    facets       Tracelake's own facets (audit identity of the run)
    events       RunEvents built from audit records (START, COMPLETE / FAIL / ABORT)
    event_facets recorded values (times, schemas, partitions, tests, lineage keys) as facets, cached
    context      what events need from around them (repository URL, schemas by version): the builder
    transport    the client's standard configuration, or JSON lines in the lakehouse
    outbox       undelivered events, durably, until ``resend``
    sqlite_file  the small SQLite files of ``outbox`` and ``received`` (WAL, schema on first use)
    publisher    the RunListener: enqueue on the run's thread, build and send in the background
    history      ``export`` of recorded history, ``resend`` of the outbox
    received     events received from other producers, stored before they are answered
    external     received events -> external run records, versions checked against the Delta log
    receiver     the HTTP endpoint (``tracelake openlineage serve``) and the file/folder import
    spark_listener  Spark options that attach the OpenLineage listener to a job outside Dagster
    cli          ``tracelake openlineage export|serve|import|resend|status|spark-conf``

Nothing here is imported by ``import tracelake.lineage`` except ``ids`` (the recorder stores the
OpenLineage run id in every record); the client library loads in the background sender.
See docs/openlineage.md.
"""
