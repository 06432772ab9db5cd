-- Where a participant's identity and rights came from (its token, the join hook, or nobody) and
-- the rights themselves, so the operator API can show them and a resume on another node keeps them
-- when the join hook is not asked again: {"source":"hook","grants":["signal"],"recheckAt":null}.
-- NULL on rows written before this migration.
ALTER TABLE participants ADD COLUMN access jsonb;

-- signaling_join as in 005, with the access written by the same INSERT (no extra round trip).
DROP FUNCTION signaling_join(text, text, text, text, text, jsonb, text, integer, integer, integer);

CREATE FUNCTION signaling_join(
  p_room text, p_id text, p_node text, p_identity text, p_name text, p_meta jsonb, p_resume_hash text,
  p_max_participants integer, p_max_grace_per_room integer, p_max_grace_per_identity integer, p_access jsonb,
  OUT admitted boolean, OUT seq float8, OUT version integer, OUT state jsonb, OUT peers json
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  connected integer;
  in_grace integer;
BEGIN
  INSERT INTO rooms AS r (name, state, seq) VALUES (p_room, NULL, nextval('membership_seq'))
  ON CONFLICT (name) DO UPDATE SET seq = nextval('membership_seq'), updated_at = now()
  RETURNING r.seq::float8, r.version, r.state INTO seq, version, state;

  SELECT count(*) FILTER (WHERE p.status = 'connected'),
         coalesce(json_agg(json_build_object('id', p.id, 'name', p.name, 'meta', p.meta) ORDER BY p.joined_at), '[]')
  INTO connected, peers
  FROM participants p WHERE p.room = p_room;

  -- least() ignores NULL, so a NULL cap caps nothing.
  SELECT least(coalesce(sum(held), 0), p_max_grace_per_room) INTO in_grace
  FROM (
    SELECT CASE WHEN p.identity IS NULL THEN count(*) ELSE least(count(*), p_max_grace_per_identity) END AS held
    FROM participants p WHERE p.room = p_room AND p.status = 'disconnected'
    GROUP BY p.identity
  ) g;

  admitted := connected + in_grace < p_max_participants;
  IF admitted THEN
    INSERT INTO participants (id, room, node_id, identity, name, meta, status, resume_hash, access)
    VALUES (p_id, p_room, p_node, p_identity, p_name, p_meta, 'connected', p_resume_hash, p_access);
    INSERT INTO room_events (room, participant_id, node_id, kind) VALUES (p_room, p_id, p_node, 'join');
  END IF;
END
$$;
