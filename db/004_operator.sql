-- The operator surface: each node's open connections for /v1/cluster, and the webhook outbox.

-- Written by each node every heartbeat period (cluster/node-load.ts); read by /v1/cluster.
CREATE TABLE node_load (
  node_id      text PRIMARY KEY,
  connections  integer NOT NULL,
  reported_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per event and endpoint, inserted in the transaction of the change it reports, deleted
-- once the endpoint accepted it (or it grew too old). Delivery is in id order per endpoint and room.
CREATE TABLE webhook_outbox (
  id               bigserial PRIMARY KEY,
  endpoint         text NOT NULL,
  room             text NOT NULL,
  event_id         text NOT NULL,               -- the webhook-id header, the same on every attempt
  type             text NOT NULL,               -- room.started, participant.joined, ...
  body             text NOT NULL,               -- the JSON body exactly as signed and sent
  created_at       timestamptz NOT NULL DEFAULT now(),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text
);
CREATE INDEX webhook_outbox_order ON webhook_outbox (endpoint, room, id);
