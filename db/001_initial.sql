-- Rooms, their shared state and membership sequence; participants and which node holds them;
-- an append-only event log; node heartbeats; leases for single-leader jobs such as the reaper.

-- Orders membership events. A sequence, not a counter: a value taken by a transaction that rolls
-- back is never handed out again, so a later event can never be mistaken for an older one.
CREATE SEQUENCE membership_seq;

CREATE TABLE rooms (
  name        text PRIMARY KEY,
  state       jsonb,                          -- NULL while version = 0
  version     integer NOT NULL DEFAULT 0,     -- compare-and-set version of state
  seq         bigint NOT NULL DEFAULT 0,      -- membership_seq value of the room's latest membership change
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE participants (
  id                 text PRIMARY KEY,
  room               text NOT NULL REFERENCES rooms (name),
  node_id            text NOT NULL,              -- node that holds (or last held) its socket
  identity           text,                       -- token subject, when tokens are in use
  name               text NOT NULL DEFAULT '',
  meta               jsonb NOT NULL DEFAULT '{}'::jsonb,
  status             text NOT NULL CHECK (status IN ('connected', 'disconnected')),
  disconnect_reason  text,                       -- peer-left reason once the grace period ends
  grace_until        timestamptz,                -- set while disconnected
  resume_hash        text NOT NULL,              -- sha256 of the current resume secret
  joined_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX participants_room ON participants (room, joined_at);
CREATE INDEX participants_node ON participants (node_id) WHERE status = 'connected';
CREATE INDEX participants_grace ON participants (grace_until) WHERE status = 'disconnected';

CREATE TABLE room_events (
  id              bigserial PRIMARY KEY,
  room            text NOT NULL,
  participant_id  text,
  node_id         text,
  kind            text NOT NULL,   -- join | resume | leave | disconnect | reap | state
  detail          jsonb,
  at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_events_room ON room_events (room, id);

CREATE TABLE nodes (
  id            text PRIMARY KEY,
  status        text NOT NULL CHECK (status IN ('up', 'draining', 'dead')),
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leases (
  name        text PRIMARY KEY,
  holder      text NOT NULL,
  expires_at  timestamptz NOT NULL
);
