// Whether this process runs in a Kubernetes pod. Kept apart from the pod watcher so that asking
// does not load @kubernetes/client-node, which costs a node tens of MiB it never uses elsewhere.
import { existsSync } from 'node:fs';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** True when the process runs in a pod with a service account token mounted. */
export function isInCluster(env: NodeJS.ProcessEnv = process.env, tokenPath = SERVICE_ACCOUNT_TOKEN): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(tokenPath));
}
