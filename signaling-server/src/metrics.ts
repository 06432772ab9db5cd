// One prom-client registry with the process defaults and every signaling_* series. Metric names
// are a public interface: dashboards, alerts and the HPA in k8s/ depend on them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const ms = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  return {
    registry,
    connections: new Gauge({ name: 'signaling_connections', help: 'Open WebSocket connections on this node', registers }),
    participants: new Gauge({ name: 'signaling_participants', help: 'Participants connected to this node', registers }),
    rooms: new Gauge({ name: 'signaling_rooms', help: 'Rooms with at least one participant on this node', registers }),
    messagesReceived: new Counter({
      name: 'signaling_messages_received_total',
      help: 'Client messages received, by type',
      labelNames: ['type'] as const,
      registers,
    }),
    deliveries: new Counter({
      name: 'signaling_deliveries_total',
      help: 'Frames handed to client sockets on this node, by kind',
      labelNames: ['kind'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'signaling_errors_total',
      help: 'Error frames sent to clients, by code',
      labelNames: ['code'] as const,
      registers,
    }),
    dropped: new Counter({
      name: 'signaling_dropped_total',
      help: 'Messages dropped instead of delivered, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    busPublishSeconds: new Histogram({
      name: 'signaling_bus_publish_seconds',
      help: 'Time to hand a message to the bus',
      buckets: ms,
      registers,
    }),
    dbQuerySeconds: new Histogram({
      name: 'signaling_db_query_seconds',
      help: 'Database operation latency, by operation',
      labelNames: ['op'] as const,
      buckets: ms,
      registers,
    }),
    joinSeconds: new Histogram({
      name: 'signaling_join_seconds',
      help: 'Time from join request to joined reply',
      buckets: ms,
      registers,
    }),
    busUp: new Gauge({ name: 'signaling_bus_up', help: '1 when the bus (Redis) is connected', registers }),
    busSilentConnections: new Counter({
      name: 'signaling_bus_silent_connections_total',
      help: 'Redis connections that missed their PING deadline (REDIS_PROBE_TIMEOUT_MS) and were destroyed and opened again, by connection (pub, sub, ssub)',
      labelNames: ['connection'] as const,
      registers,
    }),
    dbUp: new Gauge({ name: 'signaling_db_up', help: '1 when the database answered its last check', registers }),
    draining: new Gauge({ name: 'signaling_draining', help: '1 while this node drains', registers }),
    busReceived: new Counter({
      name: 'signaling_bus_received_total',
      help: 'Room messages this node received from the bus, by kind (a signal reaches only the node holding its addressee)',
      labelNames: ['kind'] as const,
      registers,
    }),
    busRecovered: new Counter({
      name: 'signaling_bus_recovered_total',
      help: 'Messages this node missed on its subscription and read back from the room logs',
      registers,
    }),
    busUnreplicated: new Counter({
      name: 'signaling_bus_unreplicated_total',
      help: 'Messages published on a Redis Cluster whose publish resolved before the replicas asked for (REDIS_CLUSTER_WAIT_REPLICAS) had them: lost if their master dies now',
      registers,
    }),
    busGaps: new Counter({
      name: 'signaling_bus_gaps_total',
      help: 'Times this node found messages missing that the room log no longer held',
      registers,
    }),
    viewResyncs: new Counter({
      name: 'signaling_view_resyncs_total',
      help: 'Room views rebuilt from the database after a bus gap, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
    resumesFromCheckpoint: new Counter({
      name: 'signaling_resumes_from_checkpoint_total',
      help: 'Resumes whose previous node was silent, read back from its last delivery checkpoint (duplicates possible)',
      registers,
    }),
    webhookQueueDepth: new Gauge({
      name: 'signaling_webhook_queue_depth',
      help: 'Webhook events waiting in the outbox (reported by the node delivering them; 0 elsewhere)',
      registers,
    }),
    webhookOldestSeconds: new Gauge({
      name: 'signaling_webhook_oldest_age_seconds',
      help: 'Age of the oldest webhook event waiting in the outbox (reported by the node delivering them)',
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'signaling_webhook_deliveries_total',
      help: 'Webhook delivery attempts by this node, by outcome (delivered, failed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    webhookDropped: new Counter({
      name: 'signaling_webhook_dropped_total',
      help: 'Webhook events dropped because they grew older than WEBHOOK_MAX_AGE_MS',
      registers,
    }),
    reaped: new Counter({
      name: 'signaling_reaped_total',
      help: 'Participants removed by the reaper, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    pruned: new Counter({
      name: 'signaling_pruned_total',
      help: 'Rows deleted by retention, by table',
      labelNames: ['table'] as const,
      registers,
    }),
    backgroundErrors: new Counter({
      name: 'signaling_background_errors_total',
      help: 'Errors of background work that were logged and retried or skipped, by task',
      labelNames: ['task'] as const,
      registers,
    }),
    busAwayMoves: new Counter({
      name: 'signaling_bus_away_moves_total',
      help: 'Times this node could not reach the bus for BUS_DOWN_RECONNECT_MS and sent its clients to other nodes',
      registers,
    }),
    judgedDead: new Counter({
      name: 'signaling_judged_dead_total',
      help: 'Times this node found the cluster had judged it dead while it was alive, and closed its connections',
      registers,
    }),
    joinHookRequests: new Counter({
      name: 'signaling_join_hook_requests_total',
      help: 'Join hook requests sent, by outcome (allow, deny, timeout, error, malformed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    joinHookSeconds: new Histogram({
      name: 'signaling_join_hook_duration_seconds',
      help: 'Time from sending a join hook request to its answer (or its failure)',
      buckets: ms,
      registers,
    }),
    joinHookRejected: new Counter({
      name: 'signaling_join_hook_rejected_total',
      help: 'Join hook requests never sent, by reason (breaker-open, queue-full, wait-timeout)',
      labelNames: ['reason'] as const,
      registers,
    }),
    joinHookBreakerState: new Gauge({
      name: 'signaling_join_hook_breaker_state',
      help: "State of this node's join hook circuit breaker: 0 closed, 1 half-open, 2 open",
      registers,
    }),
    joinHookInFlight: new Gauge({
      name: 'signaling_join_hook_in_flight',
      help: 'Join hook requests this node has out, and waiting for a slot, by state',
      labelNames: ['state'] as const,
      registers,
    }),
    joinHookRechecksPending: new Gauge({
      name: 'signaling_join_hook_rechecks_pending',
      help: 'Participants held on this node waiting for a join hook re-check',
      registers,
    }),
    joinHookDecisions: new Counter({
      name: 'signaling_join_hook_decisions_total',
      help: 'Joins, resumes and re-checks the join hook decided, by purpose and decision (allowed, denied, failed-open, failed-closed, kept, removed)',
      labelNames: ['purpose', 'decision'] as const,
      registers,
    }),
    unsettledCommits: new Counter({
      name: 'signaling_unsettled_commits_total',
      help: 'Joins and leaves whose outcome was unknown to their peers (a failed COMMIT, a publish failed after it was sent), settled in the background, by operation',
      labelNames: ['op'] as const,
      registers,
    }),
    // The drop-in endpoints of other signaling protocols (y-webrtc), apart from the native /ws series.
    compatConnections: new Gauge({
      name: 'signaling_compat_connections',
      help: 'Open WebSocket connections of a drop-in protocol endpoint on this node, by protocol',
      labelNames: ['protocol'] as const,
      registers,
    }),
    compatMessagesReceived: new Counter({
      name: 'signaling_compat_messages_received_total',
      help: 'Messages received on a drop-in protocol endpoint, by protocol and type (invalid, unknown, too-large included)',
      labelNames: ['protocol', 'type'] as const,
      registers,
    }),
    compatDropped: new Counter({
      name: 'signaling_compat_dropped_total',
      help: 'Messages and upgrades of a drop-in protocol endpoint refused or dropped, by protocol and reason',
      labelNames: ['protocol', 'reason'] as const,
      registers,
    }),
    compatTopics: new Gauge({
      name: 'signaling_compat_topics',
      help: 'Topics with at least one subscriber on this node, by protocol',
      labelNames: ['protocol'] as const,
      registers,
    }),
    compatDeliveries: new Counter({
      name: 'signaling_compat_deliveries_total',
      help: 'Frames of a drop-in protocol handed to client sockets on this node, by protocol',
      labelNames: ['protocol'] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
