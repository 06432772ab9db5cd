// Topics of the drop-in protocols (y-webrtc's signaling): publish a frame to a topic, and every
// subscriber of it on every node receives it as is, the sender too. A topic is a bus channel in a
// namespace no room can use (`#` is not allowed in room names); nothing is stored in Postgres, so
// topics have no members, state or resume. This node subscribes to a topic's channel while it has
// a local subscriber, and hands what arrives to the transport's node-wide fan-out.
import type { Logger } from 'pino';
import type { RoomBus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import { Kind, decodeEnvelope, encodeEnvelope } from './envelope.js';
import type { LocalFanout } from './session.js';

const CHANNEL_PREFIX = '#topic:';

/**
 * The bus channel of a topic. Encoded so that any topic string is a plain key: a `{` in it would
 * otherwise pick the Redis Cluster slot of the channel's keys.
 */
export const topicChannel = (topic: string): string => `${CHANNEL_PREFIX}${encodeURIComponent(topic)}`;

/** The uWS topic local subscribers of a topic are subscribed to (rooms use `r:`). */
export const localTopicOf = (topic: string): string => `t:${topic}`;

export interface TopicRelayOptions {
  nodeId: string;
  bus: RoomBus;
  fanout: LocalFanout;
  metrics: Metrics;
  log: Logger;
}

export class TopicRelay {
  /** Local subscribers per topic: the channel is subscribed while the count is above zero. */
  private readonly counts = new Map<string, number>();
  /** Channel subscriptions in flight, by topic. */
  private readonly pending = new Map<string, Promise<void>>();
  /** Topics whose channel this node is subscribed to. */
  private readonly live = new Set<string>();

  constructor(private readonly opts: TopicRelayOptions) {
    const delivered = opts.metrics.compatDeliveries.labels('y-webrtc');
    opts.bus.onMessage((channel, payload) => {
      if (!channel.startsWith(CHANNEL_PREFIX)) return;
      const envelope = decodeEnvelope(payload);
      if (envelope?.kind !== Kind.Topic) {
        opts.log.warn({ channel }, 'ignoring a malformed topic message');
        return;
      }
      const local = localTopicOf(decodeURIComponent(channel.slice(CHANNEL_PREFIX.length)));
      opts.fanout.publish(local, envelope.frame);
      delivered.inc(opts.fanout.subscriberCount(local));
    });
  }

  /** Topics with a subscriber on this node. */
  get topicCount(): number {
    return this.counts.size;
  }

  /**
   * One more local subscriber of the topic; the first one subscribes this node to its channel,
   * and so does a later one while that has not succeeded yet (the bus was down). Resolves once the
   * channel is subscribed, or that failed (counted and logged): a client's publishes wait for it,
   * so that the answers to them are not missed.
   */
  subscribe(topic: string): Promise<void> {
    this.counts.set(topic, (this.counts.get(topic) ?? 0) + 1);
    this.opts.metrics.compatTopics.labels('y-webrtc').set(this.counts.size);
    if (this.live.has(topic)) return Promise.resolve();
    const pending = this.pending.get(topic);
    if (pending) return pending;
    const subscribed = this.opts.bus
      .subscribe(topicChannel(topic))
      .then(() => {
        if (this.counts.has(topic)) this.live.add(topic);
      })
      .catch((err: unknown) => {
        this.opts.metrics.compatDropped.labels('y-webrtc', 'bus-unavailable').inc();
        this.opts.log.warn({ err }, 'could not subscribe to a topic channel');
      })
      .finally(() => this.pending.delete(topic));
    this.pending.set(topic, subscribed);
    return subscribed;
  }

  /** One local subscriber fewer; the last one unsubscribes this node from the channel. */
  unsubscribe(topic: string): void {
    const count = this.counts.get(topic);
    if (count === undefined) return;
    if (count > 1) return void this.counts.set(topic, count - 1);
    this.counts.delete(topic);
    this.live.delete(topic);
    this.opts.metrics.compatTopics.labels('y-webrtc').set(this.counts.size);
    this.opts.bus.unsubscribe(topicChannel(topic)).catch((err: unknown) => {
      this.opts.log.warn({ err }, 'could not unsubscribe from a topic channel');
    });
  }

  /** Sends the frame to every subscriber of the topic, on every node; rejects when the bus did not take it. */
  async publish(topic: string, frame: string): Promise<void> {
    await this.opts.bus.publish(topicChannel(topic), encodeEnvelope(this.opts.nodeId, { kind: Kind.Topic, frame }));
  }
}
