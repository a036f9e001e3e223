-- edge-agent ingest schema, version 1.
--
-- Exactly once rests on one table: `messages`, the ledger, keyed by (gateway, stream, seq). A batch
-- inserts its keys there first (sorted by key, ON CONFLICT DO NOTHING RETURNING) and writes the rows
-- of only the keys that came back, in the same transaction.
--
-- The data tables (readings, aggregates, energy, events) are range-partitioned by time and carry no
-- unique constraint and no foreign key: the same definitions, created without PARTITION BY, can be
-- turned into TimescaleDB hypertables with create_hypertable('<table>', 'ts') (see docs/fleet.md).

CREATE TABLE messages (
    gateway     text        NOT NULL,
    stream      text        NOT NULL,  -- the outbox identity ("" for gateways that send none)
    seq         bigint      NOT NULL,
    kind        text        NOT NULL,  -- telemetry, agg, energy, event, audit, result, other
    topic       text        NOT NULL,
    data_ts     timestamptz,           -- newest timestamp in the body (for lag)
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, stream, seq)
);

CREATE TABLE readings (
    ts      timestamptz      NOT NULL,
    gateway text             NOT NULL,
    stream  text             NOT NULL,
    seq     bigint           NOT NULL,
    device  text             NOT NULL,
    metric  text             NOT NULL,
    value   double precision,
    unit    text             NOT NULL,
    quality integer          NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX readings_series ON readings (gateway, device, metric, ts);

CREATE TABLE aggregates (
    ts       timestamptz NOT NULL,  -- window start
    ts_end   timestamptz NOT NULL,
    gateway  text        NOT NULL,
    stream   text        NOT NULL,
    seq      bigint      NOT NULL,
    device   text        NOT NULL,
    window_  text        NOT NULL,
    metric   text        NOT NULL,
    unit     text,
    count    integer,
    min      double precision,
    max      double precision,
    mean     double precision,
    delta    double precision,
    body     jsonb       NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX aggregates_series ON aggregates (gateway, device, metric, ts);

CREATE TABLE energy (
    ts       timestamptz NOT NULL,  -- window start
    ts_end   timestamptz NOT NULL,
    gateway  text        NOT NULL,
    stream   text        NOT NULL,
    seq      bigint      NOT NULL,
    device   text        NOT NULL,
    window_  text        NOT NULL,
    kwh      double precision,
    cost     double precision,
    currency text,
    kgco2e   double precision,
    body     jsonb       NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX energy_device ON energy (gateway, device, ts);

CREATE TABLE events (
    ts      timestamptz NOT NULL,
    gateway text        NOT NULL,
    stream  text        NOT NULL,
    seq     bigint      NOT NULL,
    kind    text        NOT NULL,  -- event, audit, result, other
    topic   text        NOT NULL,
    body    jsonb       NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX events_gateway ON events (gateway, ts);

-- A catch-all partition per table: a timestamp outside every daily partition (a gateway clock in
-- 1970) is stored, never refused. Daily partitions are added ahead by the consumers.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
CREATE TABLE aggregates_default PARTITION OF aggregates DEFAULT;
CREATE TABLE energy_default PARTITION OF energy DEFAULT;
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Per (gateway, stream): the seq range seen and when; the row lock serialises gap bookkeeping.
CREATE TABLE streams (
    gateway       text        NOT NULL,
    stream        text        NOT NULL,
    min_seq       bigint      NOT NULL,
    max_seq       bigint      NOT NULL,
    messages      bigint      NOT NULL DEFAULT 0,
    last_data_ts  timestamptz,
    last_received timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, stream)
);

-- Missing seq ranges (inclusive) inside [min_seq, max_seq]; a range shrinks or goes when a late
-- message fills it.
CREATE TABLE gaps (
    gateway     text        NOT NULL,
    stream      text        NOT NULL,
    first_seq   bigint      NOT NULL,
    last_seq    bigint      NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, stream, first_seq)
);

-- Not stored in the outbox (no seq): the latest of each per gateway.
CREATE TABLE gateway_status (
    gateway     text PRIMARY KEY,
    state       text        NOT NULL,
    ts          timestamptz,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gateway_health (
    gateway     text PRIMARY KEY,
    body        jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Messages that cannot be read: kept with the reason, never silently dropped.
CREATE TABLE rejected (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    reason      text        NOT NULL,
    body        bytea       NOT NULL
);
