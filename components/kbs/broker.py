"""The Trustee key broker (KBS), secure by default.

The recipe: namespace -> keys and certificates -> configuration, policies and reference values
-> secrets -> storage -> workload -> network -> outputs. Every Kubernetes object is ours (no
upstream manifests): Trustee's own overlays serve plain HTTP from emptyDir storage with a
resource policy that ignores the attestation result; this one serves HTTPS with a certificate
from the stack's CA, keeps its state on a PersistentVolumeClaim, releases resources only on an
"affirming" attestation result, and takes admin requests only with the stack's admin JWT.

File formats are in components.kbs.config (kbs-config.toml, LocalFs layout, reference values);
the admin JWT in cli.kbs_client; initdata in components.initdata.

What the stack declares (resources, policies, reference values) is copied into the persistent
store by an init container at every pod start, overwriting; what an earlier revision declared
and this one does not is deleted. Pod template annotations change with the declared content,
so `pulumi up` rolls the pod when it changes. Admin API writes to other names persist.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components import kube
from components.kbs import config as cfg
from components.kbs import se_verifier
from components.kbs.config import ReferenceValue
from components.kbs.token import sign_admin_token
from images import kata as kata_measure
from spec import rego
from spec.labels import PREFIX
from spec.model import Kbs
from spec.versions import KBS_IMAGE

NAME = "kbs"  # the Deployment, Service, ServiceAccount and certificate name
UID = 65532  # the image runs as root by default (kbs/docker/Dockerfile@v0.21.0: no USER)
CLUSTER_DOMAIN = "cluster.local"
# Certificate lifetimes. The server certificate is renewed by `pulumi up` within 30 days of its
# end (early_renewal_hours); the admin JWT is valid exactly as long as the server certificate.
CA_HOURS = 10 * 365 * 24
CERT_HOURS = 365 * 24
RENEW_HOURS = 30 * 24
SEED = "/seed"


def resource_key(path: str) -> str:
    """A stable Secret key for a resource path (Secret keys cannot hold '/')."""
    return "res-" + hashlib.sha256(path.encode()).hexdigest()[:20]


def service_dns_names(namespace: str, hostname: str | None) -> list[str]:
    """Every name a client may use for the KBS: in-cluster Service names and the host name."""
    names = [
        NAME,
        f"{NAME}.{namespace}",
        f"{NAME}.{namespace}.svc",
        f"{NAME}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]
    return names + ([hostname] if hostname else [])


def kbs_url(args: Kbs) -> str:
    """The URL guests and the admin client use: the host name (on 443 behind the ingress, on
    the fixed node port with expose: nodeport, else on the Service port), else the Service's
    cluster DNS name."""
    scheme = "http" if args.insecure_http else "https"
    if args.hostname:  # the server certificate covers it, whatever the Service type
        port = {"ingress": "", "nodeport": f":{args.node_port}"}.get(args.expose, f":{cfg.PORT}")
        return f"{scheme}://{args.hostname}{port}"
    return f"{scheme}://{NAME}.{args.namespace}.svc.{CLUSTER_DOMAIN}:{cfg.PORT}"


def _admin_token(values: list[Any], issuer: str) -> str | None:
    pem, start, end = values
    if not (pem and start and end):
        return None  # only under mocks, where no provider computes keys or validity
    return sign_admin_token(pem, issuer=issuer, not_before=start, expires=end)


def _resources_digest(values: list[Any], resources: list[tuple[str, str]]) -> str:
    """HMAC of the declared resources keyed by the server's private key: changes with any
    value, reveals nothing about them (a plain hash of a short secret could be guessed)."""
    key = (values[0] or "").encode()
    body = json.dumps(resources, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _secret(value: Any) -> pulumi.Output[Any]:
    """Output.secret, typed (the SDK's signature defeats mypy)."""
    return cast(pulumi.Output[Any], cast(Any, pulumi.Output).secret(value))


def _restricted_security_context() -> k8s.core.v1.SecurityContextArgs:
    # Pod Security Standards "restricted" (kubernetes.io/docs/concepts/security/
    # pod-security-standards) plus a read-only root filesystem.
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


@dataclass(frozen=True)
class _Keys:
    """Step 2's results: the CA, the server and token-signer certificates and their keys."""

    ca: tls.SelfSignedCert
    server: tls.LocallySignedCert
    server_key_pem: pulumi.Output[str]
    token_cert: tls.LocallySignedCert
    token_key_pem: pulumi.Output[str]
    admin_key: tls.PrivateKey


@dataclass(frozen=True)
class _Configuration:
    """Step 3's results: the ConfigMaps, the policy texts and the digest that rolls the pod."""

    maps: list[k8s.core.v1.ConfigMap]
    policies: dict[str, str]
    digest: pulumi.Output[str]


@dataclass(frozen=True)
class _Secrets:
    """Step 4's results: the two Secrets, Secret key -> resource path, and the digest of the
    declared resources."""

    keys: k8s.core.v1.Secret
    resources: k8s.core.v1.Secret
    paths: dict[str, str]
    digest: pulumi.Output[Any]


class KeyBroker(pulumi.ComponentResource):
    """The KBS and everything it needs inside the cluster.

    `reference_values`: reference value name -> accepted values (for example
    {"snp_launch_measurement": ["<hex>"]}), merged from the spec and the guest images.
    `base_dir`: where relative policy file paths are read from (the project directory).

    `__init__` reads as the recipe in the module docstring: each step is a method below."""

    def __init__(
        self,
        name: str,
        args: Kbs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        reference_values: Mapping[str, ReferenceValue] | None = None,
        image_reference_values: pulumi.Input[Mapping[str, ReferenceValue]] | None = None,
        base_dir: Path | None = None,
        allow_sample: bool = False,
        resource_values: Mapping[str, pulumi.Input[str]] | None = None,
        tees: Sequence[str] | None = None,
    ):
        """`resource_values`: resource path -> value, overriding the spec's value for that path
        (components for other languages pass secret Outputs here). `tees`: the evidence kinds
        (as in tokens: snp, tdx, sample, ...) the built-in resource policy accepts, those the
        stack's pools present (spec.rego.stack_tees); None: every TEE coco-stack runs."""
        super().__init__("coco:kbs:KeyBroker", name, None, opts)
        self.namespace = args.namespace
        self.url = kbs_url(args)
        self._name = name
        self._args = args
        self._labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "coco-stack"}
        self._child = pulumi.ResourceOptions(parent=self)
        self._tees = tees

        ns = self._namespace()
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        keys = self._keys_and_certificates()
        conf = self._configuration(
            keys,
            in_ns,
            base_dir or Path.cwd(),
            allow_sample,
            reference_values or {},
            image_reference_values or {},
        )
        secrets = self._secrets(keys, in_ns, resource_values or {})
        # IBM SE: the verifier's material where Trustee reads it (components.kbs.se_verifier)
        se = (
            se_verifier.deploy(name, args.se_verifier, args.namespace, self._labels, in_ns)
            if args.se_verifier is not None
            else None
        )
        pvc = self._storage(in_ns)
        self.deployment = self._workload(in_ns, [ns, pvc], conf, secrets, se)
        self._exposure(in_ns)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "url": self.url,
                "caCert": self.ca_cert_pem,
                "adminToken": self.admin_token,
                **({"kataGuestMeasurement": self.kata_guest} if self.kata_guest else {}),
            }
        )

    def _meta(self, obj: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=obj, namespace=self._args.namespace, labels=self._labels
        )

    def _namespace(self) -> pulumi.Resource:
        """1. The namespace, rejecting pods that are not "restricted"."""
        return kube.namespace(
            f"{self._name}-namespace",
            self._args.namespace,
            self._child,
            pod_security="restricted",
            labels=self._labels,
        )

    def _keys_and_certificates(self) -> _Keys:
        """2. Keys and certificates (pulumi_tls: kept in the stack state, stable across runs),
        and the admin token. Private key outputs are wrapped in Output.secret here: the
        provider marks them secret, the SDK's mocks do not."""
        name, child = self._name, self._child
        admin_key = tls.PrivateKey(f"{name}-admin-key", algorithm="ED25519", opts=child)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca_key_pem = _secret(ca_key.private_key_pem)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"coco-stack {pulumi.get_stack()} KBS CA", organization="coco-stack"
            ),
            is_ca_certificate=True,
            max_path_length=0,
            set_subject_key_id=True,
            validity_period_hours=CA_HOURS,
            early_renewal_hours=RENEW_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        self.ca_cert_pem: pulumi.Output[str] = ca.cert_pem

        def issue(
            suffix: str, common_name: str, dns_names: list[str], uses: list[str]
        ) -> tuple[pulumi.Output[str], tls.LocallySignedCert]:
            key = tls.PrivateKey(
                f"{name}-{suffix}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
            )
            key_pem = _secret(key.private_key_pem)
            request = tls.CertRequest(
                f"{name}-{suffix}-csr",
                private_key_pem=key_pem,
                subject=tls.CertRequestSubjectArgs(
                    common_name=common_name, organization="coco-stack"
                ),
                dns_names=dns_names or None,
                opts=child,
            )
            cert = tls.LocallySignedCert(
                f"{name}-{suffix}-cert",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key_pem,
                ca_cert_pem=ca.cert_pem,
                is_ca_certificate=False,
                set_subject_key_id=True,
                validity_period_hours=CERT_HOURS,
                early_renewal_hours=RENEW_HOURS,
                allowed_uses=uses,
                opts=child,
            )
            return key_pem, cert

        dns_names = service_dns_names(self._args.namespace, self._args.hostname)
        server_key_pem, server = issue(
            "server", dns_names[-1], dns_names, ["digital_signature", "server_auth"]
        )
        # The built-in attestation service signs its tokens with this P-256 key; the KBS trusts
        # tokens whose header certificate chains to the CA (kbs_config: trusted_certs_paths).
        token_key_pem, token_cert = issue(
            "token", "coco-stack KBS attestation token signer", [], ["digital_signature"]
        )
        issuer = cfg.admin_issuer(pulumi.get_stack())
        self.admin_public_key_pem: pulumi.Output[str] = admin_key.public_key_pem
        self.admin_token: pulumi.Output[Any] = _secret(
            pulumi.Output.all(
                _secret(admin_key.private_key_pem_pkcs8),
                server.validity_start_time,
                server.validity_end_time,
            ).apply(lambda v: _admin_token(v, issuer))
        )
        return _Keys(ca, server, server_key_pem, token_cert, token_key_pem, admin_key)

    def _configuration(
        self,
        keys: _Keys,
        in_ns: pulumi.ResourceOptions,
        base: Path,
        allow_sample: bool,
        reference_values: Mapping[str, ReferenceValue],
        image_reference_values: pulumi.Input[Mapping[str, ReferenceValue]],
    ) -> _Configuration:
        """3. Configuration, policies and reference values (not secret: ConfigMaps)."""
        name, args = self._name, self._args
        config_toml = cfg.kbs_config_toml(
            stack=pulumi.get_stack(), insecure_http=args.insecure_http
        )
        policies = {
            "resource-policy.rego": self._resource_policy(args, base, allow_sample, self._tees)
        }
        if args.attestation_policy != "default":
            policies["attestation-policy.rego"] = (base / args.attestation_policy).read_text(
                encoding="utf-8"
            )
        declared_rvs = dict(reference_values)
        if allow_sample:
            # tee: none pools: what the sample verifier and attester report, so the default
            # attestation policy affirms their guests (spec.attestation names the sources)
            declared_rvs = cfg.merge_reference_values(cfg.SAMPLE_REFERENCE_VALUES, declared_rvs)
        # bare-metal SNP pools: the kata guest's launch measurement (images.kata)
        self.kata_guest: dict[str, Any] | None = None
        if args.kata_guest is not None:
            # only `pulumi up` downloads the kata release; preview and `coco render` (mocks)
            # read the image cache and otherwise say what `pulumi up` will fetch and measure
            from pulumi.runtime import mocks, settings

            from images.release import NotFetched

            offline = pulumi.runtime.is_dry_run() or isinstance(
                settings.get_monitor(), mocks.MockMonitor
            )
            try:
                measured = kata_measure.measure(args.kata_guest, base, offline=offline)
            except NotFetched as pending:
                pulumi.log.warn(
                    "kataGuest: not measured (a preview or `coco render` reads only the image "
                    f"cache): {pending}; {pending.hint}",
                    resource=self,
                )
                self.kata_guest = {"pending": str(pending), "fetch": pending.hint}
            else:
                self.kata_guest = measured.record()
                declared_rvs = cfg.merge_reference_values(
                    declared_rvs, measured.reference_values()
                )
        # reference values from the spec, joined by the guest images' measurements (known only
        # once the images are built, so an Output); a name in both accepts the values of both,
        # which is how old and new measurements overlap during a rotation
        rv_files = pulumi.Output.all(declared_rvs, image_reference_values).apply(
            lambda both: cfg.reference_value_files(cfg.merge_reference_values(*both))
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=self._meta("kbs-config"),
            data={"kbs-config.toml": config_toml},
            opts=in_ns,
        )
        policy_map = k8s.core.v1.ConfigMap(
            f"{name}-policies", metadata=self._meta("kbs-policies"), data=policies, opts=in_ns
        )
        # reference value names are plain ([a-z0-9_]+), so their LocalFs file names are valid
        # ConfigMap keys and the whole map is mounted as the seed directory
        rv_map = k8s.core.v1.ConfigMap(
            f"{name}-reference-values",
            metadata=self._meta("kbs-reference-values"),
            data=rv_files,
            opts=in_ns,
        )
        # The KBS reads its TLS certificate, the token signer chain and the admin public key
        # only at start (kbs/src/api_server.rs, kbs/src/admin/mod.rs and attestation-service
        # ear_token/broker.rs@v0.21.0), so the digest covers them too: a renewed certificate or
        # a replaced admin key (revoking every token) rolls the pod. All three are public.
        digest = pulumi.Output.all(
            rv_files,
            keys.server.cert_pem,
            keys.token_cert.cert_pem,
            keys.ca.cert_pem,
            keys.admin_key.public_key_pem,
        ).apply(
            lambda values: hashlib.sha256(
                json.dumps([config_toml, policies, *values], sort_keys=True).encode()
            ).hexdigest()
        )
        return _Configuration([config_map, policy_map, rv_map], policies, digest)

    def _secrets(
        self,
        keys: _Keys,
        in_ns: pulumi.ResourceOptions,
        resource_values: Mapping[str, pulumi.Input[str]],
    ) -> _Secrets:
        """4. Secrets: keys and certificates, resources (every value a Pulumi secret)."""
        name = self._name
        keys_secret = k8s.core.v1.Secret(
            f"{name}-keys",
            metadata=self._meta("kbs-keys"),
            type="Opaque",
            string_data={
                "tls.key": keys.server_key_pem,
                "tls.crt": _secret(keys.server.cert_pem),
                "ca.crt": _secret(keys.ca.cert_pem),
                "token.key": keys.token_key_pem,
                # leaf first, then the CA (broker.rs reads a PEM stack; x5c[0] is the leaf)
                "token-chain.pem": _secret(
                    pulumi.Output.all(keys.token_cert.cert_pem, keys.ca.cert_pem).apply(
                        lambda pems: "".join(p or "" for p in pems)
                    )
                ),
                "admin.pub": _secret(keys.admin_key.public_key_pem),
            },
            opts=in_ns,
        )
        resources = sorted(self._args.resources, key=lambda r: r.path)
        values: dict[str, pulumi.Input[str]] = {
            r.path: r.value.get_secret_value() for r in resources
        }
        values.update(resource_values)
        paths = {resource_key(r.path): r.path for r in resources}
        self.resources_secret = k8s.core.v1.Secret(
            f"{name}-resources",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="kbs-resources",
                namespace=self._args.namespace,
                labels=self._labels,
                annotations={f"{PREFIX}/resource-paths": json.dumps(paths, sort_keys=True)},
            ),
            type="Opaque",
            string_data={resource_key(r.path): _secret(values[r.path]) for r in resources},
            opts=in_ns,
        )
        declared_paths = [r.path for r in resources]
        digest = _secret(
            pulumi.Output.all(keys.server_key_pem, *(values[p] for p in declared_paths)).apply(
                lambda v: _resources_digest(v, list(zip(declared_paths, v[1:], strict=True)))
            )
        )
        return _Secrets(keys_secret, self.resources_secret, paths, digest)

    def _storage(self, in_ns: pulumi.ResourceOptions) -> k8s.core.v1.PersistentVolumeClaim:
        """5. Storage: LocalFs on a persistent volume (never emptyDir: sessions, policies and
        resources written over the admin API must survive restarts)."""
        return k8s.core.v1.PersistentVolumeClaim(
            f"{self._name}-storage",
            metadata=self._meta("kbs-storage"),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=self._args.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": self._args.storage_size}
                ),
            ),
            opts=in_ns,
        )

    def _workload(
        self,
        in_ns: pulumi.ResourceOptions,
        needs: list[pulumi.Resource],
        conf: _Configuration,
        secrets: _Secrets,
        se: se_verifier.SeVerifierMount | None,
    ) -> k8s.apps.v1.Deployment:
        """6. Workload: the service account and the Deployment (an init container seeds the
        store from the declared content at every start)."""
        args, labels = self._args, self._labels
        account = k8s.core.v1.ServiceAccount(
            f"{self._name}-serviceaccount",
            metadata=self._meta(NAME),
            automount_service_account_token=False,
            opts=in_ns,
        )
        volumes, seed_mounts = self._volumes(secrets.paths, conf.policies)
        volumes += [se.volume] if se else []
        store_mount = k8s.core.v1.VolumeMountArgs(name="storage", mount_path=cfg.STORAGE_DIR)
        probe = k8s.core.v1.HTTPGetActionArgs(
            path="/healthz", port="kbs", scheme="HTTP" if args.insecure_http else "HTTPS"
        )
        ns, pvc = needs
        return k8s.apps.v1.Deployment(
            f"{self._name}-deployment",
            metadata=self._meta(NAME),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,  # sessions and LocalFs storage live on one ReadWriteOnce volume
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        annotations={
                            f"{PREFIX}/config-digest": conf.digest,
                            f"{PREFIX}/resources-digest": secrets.digest,
                        },
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=NAME,
                        automount_service_account_token=False,
                        enable_service_links=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True,
                            run_as_user=UID,
                            run_as_group=UID,
                            fs_group=UID,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                        ),
                        init_containers=[
                            k8s.core.v1.ContainerArgs(
                                name="seed",
                                image=KBS_IMAGE.reference,
                                command=["/bin/sh", "-c", cfg.seed_script()],
                                security_context=_restricted_security_context(),
                                volume_mounts=[store_mount, *seed_mounts],
                                resources=_resources("10m", "32Mi", "128Mi"),
                            )
                        ],
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name=NAME,
                                image=KBS_IMAGE.reference,
                                command=["/usr/local/bin/kbs", "--config-file", cfg.CONFIG_FILE],
                                env=[
                                    k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
                                    k8s.core.v1.EnvVarArgs(name="RUST_LOG", value="info"),
                                    *(se.env if se else []),
                                ],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="kbs", container_port=cfg.PORT, protocol="TCP"
                                    )
                                ],
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=probe, period_seconds=10, failure_threshold=3
                                ),
                                liveness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=probe,
                                    initial_delay_seconds=10,
                                    period_seconds=20,
                                    failure_threshold=3,
                                ),
                                security_context=_restricted_security_context(),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(
                                        name="config", mount_path=cfg.CONFIG_DIR, read_only=True
                                    ),
                                    k8s.core.v1.VolumeMountArgs(
                                        name="keys", mount_path=cfg.KEYS_DIR, read_only=True
                                    ),
                                    store_mount,
                                    k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                    *([se.mount] if se else []),
                                ],
                                resources=_resources("100m", "128Mi", "1Gi"),
                            )
                        ],
                        volumes=volumes,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    ns,
                    account,
                    pvc,
                    *conf.maps,
                    secrets.keys,
                    secrets.resources,
                    *([se.secret] if se else []),
                ],
            ),
        )

    def _exposure(self, in_ns: pulumi.ResourceOptions) -> None:
        """7. Network: the Service (ClusterIP, NodePort or LoadBalancer) and, with
        expose: ingress, a TLS-passthrough Ingress."""
        args = self._args
        service_type = {"nodeport": "NodePort", "loadbalancer": "LoadBalancer"}.get(
            args.expose, "ClusterIP"
        )
        service = k8s.core.v1.Service(
            f"{self._name}-service",
            metadata=self._meta(NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=service_type,
                selector=self._labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="kbs",
                        port=cfg.PORT,
                        node_port=args.node_port if args.expose == "nodeport" else None,
                        target_port="kbs",
                        protocol="TCP",
                        app_protocol="http" if args.insecure_http else "https",
                    )
                ],
            ),
            opts=in_ns,
        )
        if args.expose == "ingress" and args.hostname:
            self._ingress(self._name, args.hostname, self._meta(NAME), service, in_ns)

    @staticmethod
    def _resource_policy(
        args: Kbs, base: Path, allow_sample: bool, tees: Sequence[str] | None
    ) -> str:
        if args.resource_policy == "affirming":
            text = cfg.builtin_policy(
                "resource-affirming-sample.rego" if allow_sample else "resource-affirming.rego"
            )
            # release only to evidence of the TEEs this stack's pools run
            return text if tees is None else rego.builtin_resource_policy(text, tees)
        if args.resource_policy == "allow-all":
            return cfg.builtin_policy("resource-allow-all.rego")
        return (base / args.resource_policy).read_text(encoding="utf-8")

    @staticmethod
    def _volumes(
        paths: dict[str, str], policies: dict[str, str]
    ) -> tuple[list[k8s.core.v1.VolumeArgs], list[k8s.core.v1.VolumeMountArgs]]:
        """The pod's volumes, and the seed mounts: /seed/<namespace>/<LocalFs file name>."""
        volumes = [
            k8s.core.v1.VolumeArgs(
                name="config",
                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name="kbs-config",
                    items=[
                        k8s.core.v1.KeyToPathArgs(key="kbs-config.toml", path="kbs-config.toml")
                    ],
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="keys",
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name="kbs-keys", default_mode=0o440
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="storage",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name="kbs-storage"
                ),
            ),
            k8s.core.v1.VolumeArgs(
                name="tmp",
                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="64Mi"),
            ),
        ]
        seeds: list[tuple[str, k8s.core.v1.VolumeArgs]] = []
        if paths:
            seeds.append(
                (
                    cfg.NS_REPOSITORY,
                    k8s.core.v1.VolumeArgs(
                        name="seed-repository",
                        secret=k8s.core.v1.SecretVolumeSourceArgs(
                            secret_name="kbs-resources",
                            default_mode=0o440,
                            items=[
                                k8s.core.v1.KeyToPathArgs(key=key, path=cfg.local_fs_name(path))
                                for key, path in sorted(paths.items(), key=lambda kv: kv[1])
                            ],
                        ),
                    ),
                )
            )
        seeds.append(
            (
                cfg.NS_KBS,
                _config_map_volume(
                    "seed-kbs", "kbs-policies", {"resource-policy.rego": cfg.RESOURCE_POLICY_FILE}
                ),
            )
        )
        if "attestation-policy.rego" in policies:
            seeds.append(
                (
                    cfg.NS_AS_POLICY,
                    _config_map_volume(
                        "seed-attestation-policy",
                        "kbs-policies",
                        {"attestation-policy.rego": cfg.ATTESTATION_POLICY_FILE},
                    ),
                )
            )
        seeds.append(
            (
                cfg.NS_REFERENCE_VALUE,
                _config_map_volume("seed-reference-values", "kbs-reference-values", None),
            )
        )
        mounts = [
            k8s.core.v1.VolumeMountArgs(
                name=volume.name, mount_path=f"{SEED}/{namespace}", read_only=True
            )
            for namespace, volume in seeds
        ]
        return volumes + [volume for _, volume in seeds], mounts

    def _ingress(
        self,
        name: str,
        hostname: str,
        metadata: k8s.meta.v1.ObjectMetaArgs,
        service: k8s.core.v1.Service,
        opts: pulumi.ResourceOptions,
    ) -> None:
        # TLS passthrough: the KBS terminates TLS with the stack's certificate (its SANs hold
        # the host name), so guests verify the KBS itself with the CA in their initdata.
        # Annotations of ingress-nginx (kubernetes.github.io/ingress-nginx, "SSL Passthrough";
        # the controller must run with --enable-ssl-passthrough).
        metadata = k8s.meta.v1.ObjectMetaArgs(
            name=metadata.name,
            namespace=metadata.namespace,
            labels=metadata.labels,
            annotations={
                "nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
            },
        )
        backend = k8s.networking.v1.IngressBackendArgs(
            service=k8s.networking.v1.IngressServiceBackendArgs(
                name=NAME, port=k8s.networking.v1.ServiceBackendPortArgs(name="kbs")
            )
        )
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=metadata,
            spec=k8s.networking.v1.IngressSpecArgs(
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[hostname])],
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=hostname,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[
                                k8s.networking.v1.HTTPIngressPathArgs(
                                    path="/", path_type="Prefix", backend=backend
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[service])),
        )


def _config_map_volume(
    volume: str, config_map: str, items: dict[str, str] | None
) -> k8s.core.v1.VolumeArgs:
    """A ConfigMap volume: the listed keys at the given paths, or every key (items None)."""
    return k8s.core.v1.VolumeArgs(
        name=volume,
        config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
            name=config_map,
            default_mode=0o440,
            items=None
            if items is None
            else [k8s.core.v1.KeyToPathArgs(key=k, path=p) for k, p in sorted(items.items())],
        ),
    )


def _resources(cpu: str, memory: str, limit: str) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": cpu, "memory": memory}, limits={"memory": limit}
    )
