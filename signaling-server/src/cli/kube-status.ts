// What signalctl asks Kubernetes: the Deployment's pods (readiness, restarts), its autoscaler's
// replicas, and a graceful pod delete for `drain`. Loaded only when a kubeconfig is present.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isInCluster } from '../cluster/in-cluster.js';
import { CliError } from './operator-client.js';

export interface PodInfo {
  name: string;
  phase: string;
  isReady: boolean;
  restarts: number;
  isTerminating: boolean;
}

export interface HpaInfo {
  name: string;
  current: number;
  desired: number;
  min: number;
  max: number;
}

export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  selector: string;
  hpa: string;
}

/** Whether a kubeconfig (file, KUBECONFIG, or a pod's service account) is there to use. */
export function hasKubernetes(t: KubeTarget, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(t.kubeconfig || env.KUBECONFIG || existsSync(join(homedir(), '.kube', 'config')) || isInCluster(env));
}

export class KubeStatus {
  private constructor(
    private readonly core: import('@kubernetes/client-node').CoreV1Api,
    private readonly autoscaling: import('@kubernetes/client-node').AutoscalingV2Api,
    readonly namespace: string,
    private readonly target: KubeTarget,
  ) {}

  static async connect(target: KubeTarget): Promise<KubeStatus> {
    // Loaded only here: the Kubernetes client is large, and most commands never need it.
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    try {
      if (target.kubeconfig) kc.loadFromFile(target.kubeconfig);
      else kc.loadFromDefault();
      if (target.context) kc.setCurrentContext(target.context);
    } catch (err) {
      throw new CliError(`cannot read the kubeconfig: ${(err as Error).message}`);
    }
    if (!kc.getCurrentCluster()) throw new CliError('the kubeconfig names no current cluster');
    const namespace = target.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    return new KubeStatus(kc.makeApiClient(k8s.CoreV1Api), kc.makeApiClient(k8s.AutoscalingV2Api), namespace, target);
  }

  async pods(): Promise<PodInfo[]> {
    const list = await this.kube('list pods', () =>
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.target.selector }),
    );
    return list.items.map((pod) => ({
      name: pod.metadata?.name ?? '?',
      phase: pod.status?.phase ?? 'Unknown',
      isReady: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
      isTerminating: Boolean(pod.metadata?.deletionTimestamp),
    }));
  }

  /** Null when there is no autoscaler by that name. */
  async hpa(): Promise<HpaInfo | null> {
    try {
      const h = await this.autoscaling.readNamespacedHorizontalPodAutoscaler({
        name: this.target.hpa,
        namespace: this.namespace,
      });
      return {
        name: this.target.hpa,
        current: h.status?.currentReplicas ?? 0,
        desired: h.status?.desiredReplicas ?? 0,
        min: h.spec?.minReplicas ?? 1,
        max: h.spec?.maxReplicas ?? 0,
      };
    } catch (err) {
      if ((err as { code?: number }).code === 404) return null;
      throw this.failure('read the autoscaler', err);
    }
  }

  /**
   * Deletes the pod gracefully: Kubernetes sends SIGTERM, the node drains (clients reconnect to the
   * others and resume), and the Deployment starts a replacement.
   */
  async deletePod(name: string): Promise<void> {
    await this.kube(`delete pod ${name}`, () => this.core.deleteNamespacedPod({ name, namespace: this.namespace }));
  }

  private async kube<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  private failure(what: string, err: unknown): CliError {
    const code = (err as { code?: number }).code;
    if (code === 404) return new CliError(`cannot ${what}: not found in namespace ${this.namespace}`);
    if (code === 401 || code === 403)
      return new CliError(`cannot ${what}: Kubernetes refused (${code}); check the kubeconfig's user`);
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message?.split('\n')[0];
    return new CliError(`cannot ${what}: ${code ? `HTTP ${code}` : cause}`);
  }
}
