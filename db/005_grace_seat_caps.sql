-- Participants in their grace period hold a seat only up to a cap: per identity (token `sub`) and
-- per room. Without it a client that joins and drops its connection in a loop keeps a room full
-- for RESUME_GRACE_MS after each drop. Grace participants past the caps stay resumable (a resume
-- never checks the limit), so a room can briefly hold more than max_participants rows.
--
-- Also touches rooms.updated_at on every join, so that retention (which deletes rooms idle for
-- ROOM_RETENTION_MS) re-checks a row a join has just locked and leaves it alone.
--
-- The signature gains two arguments: drop the old function so no caller can reach it by mistake.
DROP FUNCTION signaling_join(text, text, text, text, text, jsonb, text, integer);

-- As in 002: creates or locks the room, takes its next membership seq, then admits the participant
-- unless the seats taken reach p_max_participants. Seats taken: every connected participant, plus
-- those in grace, counting at most p_max_grace_per_identity per identity (anonymous ones one by
-- one) and at most p_max_grace_per_room in all. A NULL cap means no cap.
CREATE FUNCTION signaling_join(
  p_room text, p_id text, p_node text, p_identity text, p_name text, p_meta jsonb, p_resume_hash text,
  p_max_participants integer, p_max_grace_per_room integer, p_max_grace_per_identity integer,
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
    INSERT INTO participants (id, room, node_id, identity, name, meta, status, resume_hash)
    VALUES (p_id, p_room, p_node, p_identity, p_name, p_meta, 'connected', p_resume_hash);
    INSERT INTO room_events (room, participant_id, node_id, kind) VALUES (p_room, p_id, p_node, 'join');
  END IF;
END
$$;
