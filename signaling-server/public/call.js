// One WebRTC call with one peer, negotiated over the signaling cluster with the "perfect
// negotiation" pattern: either side may (re)negotiate at any time, and the polite side yields on
// a collision. Because no side owns the offer, renegotiation (new channel, camera, ICE restart)
// works the same before and after a reconnect of the signaling connection.

/**
 * @typedef {{ kind: 'sdp', description: RTCSessionDescriptionInit }
 *   | { kind: 'ice', candidate: RTCIceCandidateInit | null }
 *   | { kind: 'bye' }
 *   | { kind: 'rebind', previous: string }} CallSignal
 */

export class PeerCall extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.peerId the remote participant id
   * @param {boolean} options.polite whether this side yields when both offer at once
   * @param {(data: CallSignal) => Promise<void>} options.send delivers a signal to the peer
   * @param {RTCIceServer[]} [options.iceServers]
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] 'relay' to use TURN only
   */
  constructor({ peerId, polite, send, iceServers = [], iceTransportPolicy = 'all' }) {
    super();
    this.peerId = peerId;
    this.polite = polite;
    this.send = send;
    /** @type {Map<string, RTCDataChannel>} */
    this.channels = new Map();
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** Set when a signal may have been lost with the signaling connection. */
    this.needsRecovery = false;
    this.isClosed = false;
    /** Incoming signals are applied one at a time: each step awaits the previous one. */
    this.inbox = Promise.resolve();
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.remoteStream = new MediaStream();

    this.pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        this.signal({ kind: 'sdp', description: this.pc.localDescription.toJSON() });
      } catch (error) {
        this.report(error);
      } finally {
        this.makingOffer = false;
      }
    };
    this.pc.onicecandidate = ({ candidate }) => this.signal({ kind: 'ice', candidate: candidate ? candidate.toJSON() : null });
    this.pc.ondatachannel = ({ channel }) => this.adopt(channel);
    this.pc.ontrack = ({ track }) => {
      this.remoteStream.addTrack(track);
      track.onended = () => this.remoteStream.removeTrack(track);
      this.dispatch('track', { stream: this.remoteStream });
    };
    this.pc.onconnectionstatechange = () => this.dispatch('state', { state: this.pc.connectionState });
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === 'failed') this.pc.restartIce();
    };
  }

  /** Opens a data channel; the first one triggers the initial offer. */
  openChannel(label = 'chat') {
    const existing = this.channels.get(label);
    if (existing && existing.readyState !== 'closed') return existing;
    return this.adopt(this.pc.createDataChannel(label));
  }

  /** Sends a chat line on a channel; false when that channel is not open. */
  sendText(text, label = 'chat') {
    const channel = this.channels.get(label);
    if (!channel || channel.readyState !== 'open') return false;
    channel.send(text);
    return true;
  }

  /** Attaches (or, with null, detaches) local camera and microphone; triggers renegotiation. */
  setLocalStream(stream) {
    for (const sender of this.pc.getSenders()) {
      if (sender.track) this.pc.removeTrack(sender);
    }
    if (stream) for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
  }

  /** Takes renewed ICE servers (fresh TURN credentials) for the next candidates gathered. */
  setIceServers(iceServers) {
    if (this.isClosed) return;
    this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
  }

  restartIce() {
    this.pc.restartIce();
  }

  /** Applies a signal from the peer. */
  handle(/** @type {CallSignal} */ data) {
    this.inbox = this.inbox.then(() => this.apply(data)).catch((error) => this.report(error));
    return this.inbox;
  }

  /**
   * After the signaling connection came back: re-send an offer that may not have arrived, or
   * restart ICE when the media path dropped meanwhile.
   */
  recover() {
    if (this.isClosed) return;
    const { signalingState, iceConnectionState } = this.pc;
    if (signalingState === 'have-local-offer' && this.pc.localDescription) {
      this.signal({ kind: 'sdp', description: this.pc.localDescription.toJSON() });
    } else if (
      signalingState === 'stable' &&
      (this.needsRecovery || iceConnectionState === 'failed' || iceConnectionState === 'disconnected')
    ) {
      this.pc.restartIce();
    }
    this.needsRecovery = false;
  }

  /** Ends the call; `notify` tells the peer. */
  close(notify = true) {
    if (this.isClosed) return;
    this.isClosed = true;
    if (notify) this.signal({ kind: 'bye' });
    for (const channel of this.channels.values()) channel.close();
    this.pc.close();
    this.dispatch('closed', {});
  }

  async apply(data) {
    if (this.isClosed) return;
    if (data.kind === 'sdp') {
      const { description } = data;
      const isCollision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && isCollision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        this.signal({ kind: 'sdp', description: this.pc.localDescription.toJSON() });
      }
    } else if (data.kind === 'ice') {
      try {
        await this.pc.addIceCandidate(data.candidate ?? undefined);
      } catch (error) {
        if (!this.ignoreOffer) throw error; // candidates of an offer we ignored are expected to fail
      }
    } else if (data.kind === 'bye') {
      this.close(false);
    }
  }

  adopt(channel) {
    this.channels.set(channel.label, channel);
    channel.onopen = () => this.dispatch('channel', { label: channel.label, state: 'open' });
    channel.onclose = () => this.dispatch('channel', { label: channel.label, state: 'closed' });
    channel.onmessage = ({ data }) => this.dispatch('message', { label: channel.label, text: String(data) });
    return channel;
  }

  signal(/** @type {CallSignal} */ data) {
    this.send(data).catch((error) => {
      // Lost with the connection: whether it arrived is unknown, so recover() repairs after reconnect.
      if (error && error.code === 'disconnected') this.needsRecovery = true;
      else this.report(error);
    });
  }

  report(error) {
    this.dispatch('error', { error });
  }

  dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
