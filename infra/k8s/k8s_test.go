package k8s_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/hasplock/hasp/infra/internal/repo"
	"github.com/hasplock/hasp/infra/k8s"
	"github.com/hasplock/hasp/infra/metrics"
)

// The Secrets the deployment mounts; docs/kubernetes.md says how to create
// each one.
const (
	etcdPeerSecret   = "hasp-etcd-peer-tls"
	etcdServerSecret = "hasp-etcd-server-tls"
	etcdClientSecret = "hasp-etcd-client-tls"
	authSecret       = "hasp-auth"
)

// tlsKeys are the keys of a kubernetes.io/tls Secret as cert-manager
// writes it.
var tlsKeys = []string{"ca.crt", "tls.crt", "tls.key"}

// kustomization is the part of kustomize's Kustomization that this
// directory uses, decoded strictly: a field it does not know fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// decoders maps apiVersion/kind to a new typed object.
var decoders = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

// decode decodes one YAML document strictly into its Kubernetes API type:
// unknown or duplicate fields, wrong types and unknown kinds fail.
func decode(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	mk, ok := decoders[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %s/%s", tm.APIVersion, tm.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// documents splits a multi-document YAML file, dropping empty documents.
func documents(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			out = append(out, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// set is every object of the deployment, by type.
type set struct {
	kust         kustomization
	namespaces   []*corev1.Namespace
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	monitors     []*monitoringv1.ServiceMonitor
	rules        []*monitoringv1.PrometheusRule
	metas        []metav1.ObjectMeta // of every namespaced object
}

var (
	loadOnce sync.Once
	loaded   *set
	loadErr  error
)

// load decodes kustomization.yaml and every resource it lists, strictly.
func load(t *testing.T) *set {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = loadAll() })
	require.NoError(t, loadErr)
	return loaded
}

func loadAll() (*set, error) {
	s := &set{}
	b, err := k8s.Manifests.ReadFile("kustomization.yaml")
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(b, &s.kust); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	for _, f := range s.kust.Resources {
		b, err := k8s.Manifests.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs, err := documents(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for i, doc := range docs {
			obj, err := decode(doc)
			if err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", f, i+1, err)
			}
			if m, ok := obj.(metav1.ObjectMetaAccessor); ok && !isNamespace(obj) {
				s.metas = append(s.metas, *m.GetObjectMeta().(*metav1.ObjectMeta))
			}
			for _, add := range []func(any) bool{
				collect(&s.namespaces), collect(&s.services), collect(&s.statefulSets), collect(&s.deployments),
				collect(&s.pdbs), collect(&s.monitors), collect(&s.rules),
			} {
				if add(obj) {
					break
				}
			}
		}
	}
	return s, nil
}

// collect returns a function that appends an object of type T to dst and
// reports whether it did.
func collect[T any](dst *[]T) func(any) bool {
	return func(obj any) bool {
		o, ok := obj.(T)
		if ok {
			*dst = append(*dst, o)
		}
		return ok
	}
}

func isNamespace(obj any) bool {
	_, ok := obj.(*corev1.Namespace)
	return ok
}

// workload is a StatefulSet or a Deployment.
type workload struct {
	name     string
	replicas int32
	selector *metav1.LabelSelector
	pod      corev1.PodTemplateSpec
	claims   []corev1.PersistentVolumeClaim
}

func (s *set) workloads() []workload {
	var out []workload
	for _, st := range s.statefulSets {
		out = append(out, workload{"StatefulSet " + st.Name, ptrOr(st.Spec.Replicas, 1), st.Spec.Selector, st.Spec.Template, st.Spec.VolumeClaimTemplates})
	}
	for _, d := range s.deployments {
		out = append(out, workload{"Deployment " + d.Name, ptrOr(d.Spec.Replicas, 1), d.Spec.Selector, d.Spec.Template, nil})
	}
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// selects reports whether sel (non-empty) matches the labels.
func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	require.NotNil(t, sel)
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return !s.Empty() && s.Matches(labels.Set(l))
}

// flags parses "--name=value" arguments; any other form fails the test.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.True(t, ok && strings.HasPrefix(a, "--"), "argument %q is not --name=value", a)
		_, dup := out[k]
		require.False(t, dup, "--%s given twice", k)
		out[k] = v
	}
	return out
}

// secretAt returns the Secret and key mounted at file in container c.
func secretAt(pod corev1.PodSpec, c corev1.Container, file string) (secret, key string, err error) {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return "", "", fmt.Errorf("%s is on no volume of container %s", file, c.Name)
	}
	rel := strings.TrimPrefix(file, strings.TrimSuffix(best.MountPath, "/")+"/")
	for _, v := range pod.Volumes {
		if v.Name != best.Name {
			continue
		}
		if v.Secret == nil {
			return "", "", fmt.Errorf("%s: volume %s is not a Secret", file, v.Name)
		}
		if len(v.Secret.Items) == 0 {
			return v.Secret.SecretName, rel, nil
		}
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				return v.Secret.SecretName, it.Key, nil
			}
		}
		return "", "", fmt.Errorf("%s: Secret %s projects no item to %s", file, v.Secret.SecretName, rel)
	}
	return "", "", fmt.Errorf("%s: container %s mounts volume %s, which the pod does not have", file, c.Name, best.Name)
}

// containerPort resolves a probe or Service port (by name or number)
// against the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := repo.Root()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	return string(b)
}

// TestStrictDecoding: the decoder that validates the manifests rejects what
// Kubernetes would reject or silently drop.
func TestStrictDecoding(t *testing.T) {
	for doc, want := range map[string]string{
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n":                              `unknown field "replica"`,
		"apiVersion: v1\nkind: Service\nspec:\n  type: ClusterIP\n  type: NodePort\n":               `"type" already set`,
		"apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replicas: three\n":                        "cannot unmarshal string",
		"apiVersion: v1\nkind: ConfigMap\ndata: {}\n":                                               "unknown kind v1/ConfigMap",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nspec:\n  endpoint: []\n":       `unknown field "endpoint"`,
		"apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec:\n  groups: [{nme: x}]\n": `unknown field "nme"`,
	} {
		_, err := decode([]byte(doc))
		assert.ErrorContains(t, err, want, doc)
	}
}

// TestKustomization: kustomization.yaml lists every manifest of the
// directory, puts everything in the namespace it creates, and (with
// kubectl, offline) builds.
func TestKustomization(t *testing.T) {
	s := load(t)
	entries, err := k8s.Manifests.ReadDir(".")
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		if e.Name() != "kustomization.yaml" {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	listed := slices.Clone(s.kust.Resources)
	slices.Sort(listed)
	assert.Equal(t, files, listed, "kustomization.yaml lists every manifest")
	assert.Equal(t, "kustomize.config.k8s.io/v1beta1", s.kust.APIVersion)
	require.Len(t, s.namespaces, 1)
	assert.Equal(t, s.namespaces[0].Name, s.kust.Namespace, "the kustomization's namespace is the one it creates")
	assert.Equal(t, "restricted", s.namespaces[0].Labels["pod-security.kubernetes.io/enforce"])
	for _, m := range s.metas {
		assert.Empty(t, m.Namespace, "%s: the kustomization sets the namespace", m.Name)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not installed (it comes with the machine image)")
		}
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	docs, err := documents(out)
	require.NoError(t, err)
	assert.Len(t, docs, len(s.metas)+len(s.namespaces), "kubectl kustomize builds every object")
	for _, doc := range docs {
		obj, err := decode(doc)
		require.NoError(t, err)
		if o, ok := obj.(metav1.ObjectMetaAccessor); ok && o.GetObjectMeta().GetName() != s.kust.Namespace {
			assert.Equal(t, s.kust.Namespace, o.GetObjectMeta().GetNamespace(), o.GetObjectMeta().GetName())
		}
	}
}

// TestWorkloads: for every StatefulSet and Deployment, the selector
// selects the pod template; every container has requests and limits, a
// pinned image, the restricted Pod Security settings, probes on its own
// ports, and volumes that exist.
func TestWorkloads(t *testing.T) {
	s := load(t)
	ws := s.workloads()
	require.Len(t, ws, 2, "the etcd StatefulSet and the hasp Deployment")
	for _, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			pod := w.pod.Spec
			assert.True(t, selects(t, w.selector, w.pod.Labels), "selector matches the pod labels")
			assert.Equal(t, ptrOr(pod.AutomountServiceAccountToken, true), false, "no API token: neither calls the Kubernetes API")
			psc := ptrOr(pod.SecurityContext, corev1.PodSecurityContext{})
			require.NotNil(t, psc.SeccompProfile)
			assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
			require.NotEmpty(t, pod.Containers)
			assert.Empty(t, pod.InitContainers)
			volumes := map[string]bool{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = true
			}
			for _, c := range w.claims {
				volumes[c.Name] = true
			}
			for _, c := range pod.Containers {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
					assert.False(t, req.IsZero(), "%s: %s request", c.Name, r)
					assert.False(t, lim.IsZero(), "%s: %s limit", c.Name, r)
					assert.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request <= limit", c.Name, r)
				}
				repoName, tag, ok := strings.Cut(path.Base(c.Image), ":")
				assert.True(t, ok && tag != "" && tag != "latest", "%s: image %s has a pinned tag", c.Name, c.Image)
				assert.NotEmpty(t, repoName)

				sc := ptrOr(c.SecurityContext, corev1.SecurityContext{})
				assert.True(t, ptrOr(sc.RunAsNonRoot, ptrOr(psc.RunAsNonRoot, false)), "%s: runAsNonRoot", c.Name)
				assert.NotZero(t, ptrOr(sc.RunAsUser, ptrOr(psc.RunAsUser, 0)), "%s: a non-zero uid", c.Name)
				assert.False(t, ptrOr(sc.AllowPrivilegeEscalation, true), "%s: allowPrivilegeEscalation false", c.Name)
				assert.True(t, ptrOr(sc.ReadOnlyRootFilesystem, false), "%s: read-only root filesystem", c.Name)
				assert.False(t, ptrOr(sc.Privileged, false), "%s: not privileged", c.Name)
				require.NotNil(t, sc.Capabilities, c.Name)
				assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s: drops all capabilities", c.Name)
				assert.Empty(t, sc.Capabilities.Add, c.Name)

				for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
					require.NotNil(t, p, "%s: %s probe", c.Name, kind)
					require.NotNil(t, p.HTTPGet, "%s: %s probe is an HTTP GET", c.Name, kind)
					_, ok := containerPort(c, p.HTTPGet.Port)
					assert.True(t, ok, "%s: %s probe port %s is a container port", c.Name, kind, p.HTTPGet.Port.String())
				}
				for _, m := range c.VolumeMounts {
					assert.True(t, volumes[m.Name], "%s: volume %s exists", c.Name, m.Name)
				}
			}
		})
	}
}

// etcdSet returns the etcd StatefulSet, its container and its headless
// Service.
func etcdSet(t *testing.T, s *set) (*appsv1.StatefulSet, corev1.Container, *corev1.Service) {
	t.Helper()
	require.Len(t, s.statefulSets, 1)
	st := s.statefulSets[0]
	require.Len(t, st.Spec.Template.Spec.Containers, 1)
	var svc *corev1.Service
	for _, x := range s.services {
		if x.Name == st.Spec.ServiceName {
			svc = x
		}
	}
	require.NotNil(t, svc, "serviceName %q is a Service", st.Spec.ServiceName)
	return st, st.Spec.Template.Spec.Containers[0], svc
}

// TestEtcd: an odd number of members (at least 3) on persistent volumes,
// started in parallel, one per node, each known by its pod DNS name; TLS
// with client certificates for clients and peers, from Secrets; the etcd
// release hasp is tested against.
func TestEtcd(t *testing.T) {
	s := load(t)
	st, c, svc := etcdSet(t, s)
	n := ptrOr(st.Spec.Replicas, 1)
	assert.True(t, n >= 3 && n%2 == 1, "replicas %d: odd and at least 3", n)
	assert.Equal(t, appsv1.ParallelPodManagement, st.Spec.PodManagementPolicy, "a new cluster needs all members up to reach a quorum")

	// The headless Service names the members.
	assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "headless")
	assert.True(t, svc.Spec.PublishNotReadyAddresses, "members resolve before they are ready")
	assert.True(t, selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, st.Spec.Template.Labels))

	// Data on a persistent volume claim per member.
	require.NotEmpty(t, st.Spec.VolumeClaimTemplates, "persistent volume claim templates")
	f := flags(t, c.Args)
	dataMount := ""
	for _, pvc := range st.Spec.VolumeClaimTemplates {
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		assert.False(t, size.IsZero(), "claim %s requests storage", pvc.Name)
		assert.Contains(t, pvc.Spec.AccessModes, corev1.ReadWriteOnce)
		for _, m := range c.VolumeMounts {
			if m.Name == pvc.Name {
				dataMount = m.MountPath
			}
		}
	}
	require.NotEmpty(t, dataMount, "a claim is mounted")
	assert.True(t, strings.HasPrefix(f["data-dir"], strings.TrimSuffix(dataMount, "/")+"/"), "--data-dir %s is on the persistent volume %s", f["data-dir"], dataMount)

	// One member per node.
	aff := ptrOr(st.Spec.Template.Spec.Affinity, corev1.Affinity{})
	require.NotNil(t, aff.PodAntiAffinity)
	terms := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	require.NotEmpty(t, terms, "required anti-affinity")
	assert.Equal(t, "kubernetes.io/hostname", terms[0].TopologyKey)
	assert.True(t, selects(t, terms[0].LabelSelector, st.Spec.Template.Labels), "the anti-affinity is against the other members")

	// Names and URLs.
	peer, ok := containerPort(c, intstr.FromString("peer"))
	require.True(t, ok)
	client, ok := containerPort(c, intstr.FromString("client"))
	require.True(t, ok)
	for _, p := range []int32{peer, client} {
		found := false
		for _, sp := range svc.Spec.Ports {
			found = found || sp.Port == p
		}
		assert.True(t, found, "the headless Service has port %d", p)
	}
	var podName bool
	for _, e := range c.Env {
		podName = podName || (e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name")
	}
	assert.True(t, podName, "POD_NAME comes from the pod's name")
	assert.Equal(t, "$(POD_NAME)", f["name"])
	var members []string
	for i := range n {
		m := fmt.Sprintf("%s-%d", st.Name, i)
		members = append(members, fmt.Sprintf("%s=https://%s.%s:%d", m, m, svc.Name, peer))
	}
	assert.Equal(t, strings.Join(members, ","), f["initial-cluster"], "one entry per member, by pod DNS name")
	assert.Equal(t, fmt.Sprintf("https://$(POD_NAME).%s:%d", svc.Name, peer), f["initial-advertise-peer-urls"])
	assert.Equal(t, fmt.Sprintf("https://$(POD_NAME).%s:%d", svc.Name, client), f["advertise-client-urls"])
	assert.Equal(t, fmt.Sprintf("https://0.0.0.0:%d", peer), f["listen-peer-urls"])
	assert.Equal(t, fmt.Sprintf("https://0.0.0.0:%d", client), f["listen-client-urls"])
	assert.Equal(t, "new", f["initial-cluster-state"])

	// TLS from Secrets, client certificates required.
	assert.Equal(t, "true", f["client-cert-auth"])
	assert.Equal(t, "true", f["peer-client-cert-auth"])
	for flag, want := range map[string][2]string{
		"trusted-ca-file": {etcdServerSecret, "ca.crt"}, "cert-file": {etcdServerSecret, "tls.crt"}, "key-file": {etcdServerSecret, "tls.key"},
		"peer-trusted-ca-file": {etcdPeerSecret, "ca.crt"}, "peer-cert-file": {etcdPeerSecret, "tls.crt"}, "peer-key-file": {etcdPeerSecret, "tls.key"},
	} {
		secret, key, err := secretAt(st.Spec.Template.Spec, c, f[flag])
		require.NoError(t, err, "--%s", flag)
		assert.Equal(t, want, [2]string{secret, key}, "--%s", flag)
	}

	// Health probes on the plain-HTTP metrics listener.
	metricsPort, ok := containerPort(c, intstr.FromString("metrics"))
	require.True(t, ok)
	assert.Equal(t, fmt.Sprintf("http://0.0.0.0:%d", metricsPort), f["listen-metrics-urls"])
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/livez", c.LivenessProbe.HTTPGet.Path)

	// The etcd release of hasp's go.mod.
	m := regexp.MustCompile(`(?m)^\s*go\.etcd\.io/etcd/server/v3 (v\d+\.\d+\.\d+)\s*$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	require.NotNil(t, m, "go.mod requires go.etcd.io/etcd/server/v3")
	assert.Regexp(t, `^(quay\.io/coreos/etcd|registry\.k8s\.io/etcd|gcr\.io/etcd-development/etcd):`, c.Image)
	assert.Equal(t, m[1], strings.SplitN(c.Image, ":", 2)[1], "the etcd release hasp is tested against")
}

var (
	serveHelpOnce sync.Once
	serveHelp     string
	serveHelpErr  error
)

// serveFlags returns the flags `hasp serve --help` lists, from a hasp built
// from this checkout.
func serveFlags(t *testing.T) []string {
	t.Helper()
	serveHelpOnce.Do(func() {
		root, err := repo.Root()
		if err != nil {
			serveHelpErr = err
			return
		}
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("hasp-k8s-test-%d", os.Getpid()))
		defer os.Remove(bin)
		if out, err := exec.Command("go", "build", "-C", root, "-o", bin, "./cmd/hasp").CombinedOutput(); err != nil {
			serveHelpErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
		serveHelp, serveHelpErr = string(out), err
	})
	require.NoError(t, serveHelpErr)
	var out []string
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(serveHelp, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestHasp: at least two replicas of the image `make image` builds,
// probes on /v1/health at the port it listens on, real `hasp serve` flags,
// a store URL that lists every etcd member by pod DNS name and reads its
// TLS files from the client certificate's Secret, tokens from a Secret.
func TestHasp(t *testing.T) {
	s := load(t)
	require.Len(t, s.deployments, 1)
	d := s.deployments[0]
	assert.GreaterOrEqual(t, ptrOr(d.Spec.Replicas, 1), int32(2))
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]

	root, err := repo.Root()
	require.NoError(t, err)
	img, err := repo.Image(root)
	require.NoError(t, err)
	assert.Equal(t, img, c.Image, "the image make image builds: $(IMAGE):$(VERSION)")
	assert.Empty(t, c.Command, "the image's entrypoint is hasp serve")

	f := flags(t, c.Args)
	known := serveFlags(t)
	for k := range f {
		assert.Contains(t, known, k, "--%s is a flag of hasp serve", k)
	}
	_, port, err := splitHostPort(f["listen"])
	require.NoError(t, err)
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		require.NotNil(t, p.HTTPGet, kind)
		assert.Equal(t, "/v1/health", p.HTTPGet.Path, kind)
		got, ok := containerPort(c, p.HTTPGet.Port)
		assert.True(t, ok && got == port, "%s probe on the port hasp listens on (%d)", kind, port)
	}
	assert.Equal(t, int32(8080), port)

	// The store URL.
	u, err := url.Parse(f["store"])
	require.NoError(t, err)
	assert.Equal(t, "etcd", u.Scheme)
	st, ec, svc := etcdSet(t, s)
	client, ok := containerPort(ec, intstr.FromString("client"))
	require.True(t, ok)
	var want []string
	for i := range ptrOr(st.Spec.Replicas, 1) {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", st.Name, i, svc.Name, client))
	}
	assert.Equal(t, want, strings.Split(u.Host, ","), "the store lists every etcd member by its pod DNS name")
	q := u.Query()
	for param, key := range map[string]string{"ca": "ca.crt", "cert": "tls.crt", "key": "tls.key"} {
		secret, k, err := secretAt(pod, c, q.Get(param))
		require.NoError(t, err, "store URL %s=", param)
		assert.Equal(t, [2]string{etcdClientSecret, key}, [2]string{secret, k}, "store URL %s=", param)
	}
	assert.NotEmpty(t, q.Get("prefix"))

	// Bearer tokens from a Secret.
	secret, key, err := secretAt(pod, c, f["auth-token-file"])
	require.NoError(t, err)
	assert.Equal(t, [2]string{authSecret, "tokens"}, [2]string{secret, key})

	// Graceful shutdown fits in the termination grace period.
	grace := ptrOr(pod.TerminationGracePeriodSeconds, 30)
	shutdown := strings.TrimSuffix(f["shutdown-grace"], "s")
	sg, err := strconv.Atoi(shutdown)
	require.NoError(t, err, "--shutdown-grace in whole seconds")
	pre := int64(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		pre = c.Lifecycle.PreStop.Sleep.Seconds
	}
	assert.Less(t, pre+int64(sg), grace, "preStop pause + --shutdown-grace < terminationGracePeriodSeconds")
}

func splitHostPort(listen string) (string, int32, error) {
	i := strings.LastIndex(listen, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("listen %q has no port", listen)
	}
	p, err := strconv.Atoi(listen[i+1:])
	return listen[:i], int32(p), err
}

// TestSecretsDocumented: every Secret a pod mounts is one the tests know,
// and docs/kubernetes.md tells how to create it.
func TestSecretsDocumented(t *testing.T) {
	s := load(t)
	doc := readRepoFile(t, "docs/kubernetes.md")
	var mounted []string
	for _, w := range s.workloads() {
		for _, v := range w.pod.Spec.Volumes {
			if v.Secret != nil {
				mounted = append(mounted, v.Secret.SecretName)
				assert.Contains(t, doc, v.Secret.SecretName, "docs/kubernetes.md says how to create it")
			}
		}
	}
	slices.Sort(mounted)
	assert.Equal(t, []string{authSecret, etcdClientSecret, etcdPeerSecret, etcdServerSecret}, mounted)
	for _, k := range tlsKeys {
		assert.Contains(t, doc, k)
	}
}

// TestServicesAndPDBs: every Service selects pods and targets their named
// ports; every PodDisruptionBudget selects the pods of exactly one
// workload, with maxUnavailable 1.
func TestServicesAndPDBs(t *testing.T) {
	s := load(t)
	ws := s.workloads()
	for _, svc := range s.services {
		var sel []workload
		for _, w := range ws {
			if selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, w.pod.Labels) {
				sel = append(sel, w)
			}
		}
		require.Len(t, sel, 1, "Service %s selects the pods of one workload", svc.Name)
		for _, p := range svc.Spec.Ports {
			require.NotEmpty(t, p.Name, "Service %s: named ports", svc.Name)
			_, ok := containerPort(sel[0].pod.Spec.Containers[0], p.TargetPort)
			assert.True(t, ok, "Service %s: port %s targets a container port", svc.Name, p.Name)
		}
	}
	require.Len(t, s.pdbs, len(ws), "one PodDisruptionBudget per workload")
	for _, pdb := range s.pdbs {
		var n int
		for _, w := range ws {
			if selects(t, pdb.Spec.Selector, w.pod.Labels) {
				n++
			}
		}
		assert.Equal(t, 1, n, "PodDisruptionBudget %s selects the pods of exactly one workload", pdb.Name)
		require.NotNil(t, pdb.Spec.MaxUnavailable, pdb.Name)
		assert.Equal(t, intstr.FromInt32(1), *pdb.Spec.MaxUnavailable, pdb.Name)
		assert.Nil(t, pdb.Spec.MinAvailable, pdb.Name)
	}
}

// TestServiceMonitor: it selects the hasp Service by its labels and
// scrapes /metrics on the Service's hasp port.
func TestServiceMonitor(t *testing.T) {
	s := load(t)
	require.Len(t, s.monitors, 1)
	sm := s.monitors[0]
	require.Len(t, s.deployments, 1)
	hasp := s.deployments[0].Spec.Template
	var svc *corev1.Service
	for _, x := range s.services {
		if selects(t, &sm.Spec.Selector, x.Labels) {
			require.Nil(t, svc, "the ServiceMonitor selects one Service")
			svc = x
		}
	}
	require.NotNil(t, svc, "the ServiceMonitor selects a Service")
	assert.True(t, selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, hasp.Labels), "that Service is hasp's")
	assert.Empty(t, sm.Spec.NamespaceSelector.MatchNames, "same namespace")
	assert.False(t, sm.Spec.NamespaceSelector.Any)
	require.Len(t, sm.Spec.Endpoints, 1)
	ep := sm.Spec.Endpoints[0]
	assert.Equal(t, "/metrics", ep.Path)
	var sp *corev1.ServicePort
	for i, p := range svc.Spec.Ports {
		if p.Name == ep.Port {
			sp = &svc.Spec.Ports[i]
		}
	}
	require.NotNil(t, sp, "endpoint port %q is a port name of Service %s", ep.Port, svc.Name)
	got, ok := containerPort(hasp.Spec.Containers[0], sp.TargetPort)
	assert.True(t, ok && got == 8080, "the hasp port, where /metrics is served")
	if sm.Spec.JobLabel != "" {
		assert.Equal(t, "hasp", svc.Labels[sm.Spec.JobLabel], "job=\"hasp\", as the alerts select")
	}
}

// TestPrometheusRule: every alert expression parses and references only
// hasp's metrics (names, labels and label values of the catalog); every
// alert has a duration, a severity, a summary, a description and a
// runbook_url to its own section of docs/runbook.md.
func TestPrometheusRule(t *testing.T) {
	s := load(t)
	require.Len(t, s.rules, 1)
	runbook := readRepoFile(t, "docs/runbook.md")
	seen := map[string]bool{}
	var n int
	for _, g := range s.rules[0].Spec.Groups {
		for _, r := range g.Rules {
			n++
			require.NotEmpty(t, r.Alert, "alerting rules only (a recording rule would add names)")
			assert.False(t, seen[r.Alert], "alert %s defined twice", r.Alert)
			seen[r.Alert] = true
			_, err := metrics.Names(r.Expr.String())
			assert.NoError(t, err, r.Alert)
			assert.NotNil(t, r.For, "%s: a for duration", r.Alert)
			assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
			assert.NotEmpty(t, r.Annotations["description"], r.Alert)
			assert.Equal(t, "https://github.com/hasplock/hasp/blob/main/docs/runbook.md#"+strings.ToLower(r.Alert), r.Annotations["runbook_url"], r.Alert)
			assert.Regexp(t, `(?m)^### `+regexp.QuoteMeta(r.Alert)+`$`, runbook, "docs/runbook.md has a section for %s", r.Alert)
		}
	}
	assert.GreaterOrEqual(t, n, 5)
}
