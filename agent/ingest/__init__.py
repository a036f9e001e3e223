"""``edge-agent ingest``: the upstream side of the fleet path (an optional extra, ``[ingest]``).

Consumes gateway messages from a broker cluster (a RabbitMQ quorum queue bound to ``amq.topic``, or
an MQTT 5 shared subscription) and writes them into PostgreSQL exactly once per (gateway, stream,
seq), acknowledging each message only after its transaction committed. The daemon never imports this
package (an import-linter contract in pyproject.toml holds it to that). See docs/fleet.md.
"""
