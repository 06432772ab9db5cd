-- Whether each node could reach the bus (Redis) at its last heartbeat. A node that cannot sends its
-- clients to another node only when some node heartbeating since says it can: when Redis is away
-- for every node, moving clients around would only make them churn.
ALTER TABLE nodes ADD COLUMN bus_up boolean NOT NULL DEFAULT true;
