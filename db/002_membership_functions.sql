-- Join and leave as one statement each. Both run inside a transaction that the node keeps open
-- until it has published the change on the bus, so the room stays locked from the seq to the
-- publish; these functions only save the round trips between taking the lock and the change.
--
-- Both are VOLATILE plpgsql: under READ COMMITTED every statement in them takes a fresh snapshot,
-- so what is read after the lock includes whatever the previous lock holder committed. (One SQL
-- statement could not do that: all its parts share the snapshot taken before it waited.)

-- Creates the room if needed and locks its row, takes its next membership seq (after the lock: a
-- seq taken before waiting could be older than that of the change the wait was for), and adds the
-- participant unless the room already holds max_participants. Returns the peers that were there,
-- the room's state and the seq; admitted is false when the room is full, and the caller then rolls
-- back, seq included. ON CONFLICT DO UPDATE also waits for, then locks, a row that a concurrent
-- transaction is creating. The nextval() in VALUES runs before any wait, which is harmless only
-- because a room being created has no earlier change; on conflict that value is simply skipped.
CREATE FUNCTION signaling_join(
  p_room text, p_id text, p_node text, p_identity text, p_name text, p_meta jsonb, p_resume_hash text,
  p_max_participants integer,
  OUT admitted boolean, OUT seq float8, OUT version integer, OUT state jsonb, OUT peers json
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  present integer;
BEGIN
  INSERT INTO rooms AS r (name, state, seq) VALUES (p_room, NULL, nextval('membership_seq'))
  ON CONFLICT (name) DO UPDATE SET seq = nextval('membership_seq')
  RETURNING r.seq::float8, r.version, r.state INTO seq, version, state;

  SELECT count(*), coalesce(json_agg(json_build_object('id', p.id, 'name', p.name, 'meta', p.meta) ORDER BY p.joined_at), '[]')
  INTO present, peers
  FROM participants p WHERE p.room = p_room;

  admitted := present < p_max_participants;
  IF admitted THEN
    INSERT INTO participants (id, room, node_id, identity, name, meta, status, resume_hash)
    VALUES (p_id, p_room, p_node, p_identity, p_name, p_meta, 'connected', p_resume_hash);
    INSERT INTO room_events (room, participant_id, node_id, kind) VALUES (p_room, p_id, p_node, 'join');
  END IF;
END
$$;

-- Locks the room, removes the participant, takes the room's next seq and logs the leave. Returns
-- the seq, or NULL (and takes no seq) when the participant was not in the room.
CREATE FUNCTION signaling_leave(p_room text, p_id text, p_node text, OUT seq float8)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM 1 FROM rooms WHERE name = p_room FOR UPDATE;
  DELETE FROM participants WHERE id = p_id AND room = p_room;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE rooms SET seq = nextval('membership_seq') WHERE name = p_room RETURNING rooms.seq::float8 INTO seq;
  INSERT INTO room_events (room, participant_id, node_id, kind) VALUES (p_room, p_id, p_node, 'leave');
END
$$;
