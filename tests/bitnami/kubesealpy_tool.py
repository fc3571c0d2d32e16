#!/usr/bin/env python3
"""A Bitnami Sealed Secrets producer for Sealant's tests, independent of Sealant's code.

Values are sealed by kubesealpy (PyPI; kubeseal's format implemented with `cryptography`),
keys made by `cryptography`. Used by crates/seal-cli/tests/bitnami.rs.

  kubesealpy_tool.py keygen DIR NAME [--pkcs8]
      writes DIR/NAME.key (PEM private key, PKCS#1 unless --pkcs8), DIR/NAME.pub (PEM public
      key) and DIR/NAME.secret.yaml (the key as Bitnami's controller stores it: a
      kubernetes.io/tls Secret labelled sealedsecrets.bitnami.com/sealed-secrets-key).
  kubesealpy_tool.py seal PUB SCOPE NAMESPACE NAME [--type T] [--immutable] [--label K=V]
                          [--annotation K=V] [--json] ITEM=BASE64...
      prints a Bitnami SealedSecret (YAML) sealed to the public key in PUB.
"""

import argparse
import base64
import json
import pathlib
import sys

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubesealpy import Sealer, SealingScope

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"


def keygen(args):
    out = pathlib.Path(args.dir)
    key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    fmt = (
        serialization.PrivateFormat.PKCS8
        if args.pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (out / f"{args.name}.key").write_bytes(private)
    (out / f"{args.name}.pub").write_bytes(public)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": args.name,
            "namespace": "kube-system",
            "labels": {KEY_LABEL: "active"},
        },
        "data": {
            "tls.crt": base64.b64encode(public).decode(),
            "tls.key": base64.b64encode(private).decode(),
        },
    }
    (out / f"{args.name}.secret.yaml").write_text(yaml.safe_dump(secret))


def pairs(values):
    out = {}
    for v in values or []:
        k, _, val = v.partition("=")
        out[k] = val
    return out or None


def seal(args):
    public = serialization.load_pem_public_key(pathlib.Path(args.pub).read_bytes())
    scope = {
        "strict": SealingScope.STRICT,
        "namespace-wide": SealingScope.NAMESPACE_WIDE,
        "cluster-wide": SealingScope.CLUSTER_WIDE,
    }[args.scope]
    data = {}
    for item in args.items:
        k, _, b64 = item.partition("=")
        data[k] = base64.b64decode(b64)
    sealed = Sealer(public).seal(
        name=args.name,
        namespace=args.namespace,
        data=data,
        scope=scope,
        secret_type=args.type,
        labels=pairs(args.label),
        annotations=pairs(args.annotation),
    )
    obj = sealed.model_dump(by_alias=True, exclude_none=True)
    if args.immutable:
        obj["spec"]["template"]["immutable"] = True
    if args.json:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(obj, sort_keys=False))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("dir")
    k.add_argument("name")
    k.add_argument("--pkcs8", action="store_true")
    k.add_argument("--bits", type=int, default=2048)
    s = sub.add_parser("seal")
    s.add_argument("pub")
    s.add_argument("scope")
    s.add_argument("namespace")
    s.add_argument("name")
    s.add_argument("--type", default="Opaque")
    s.add_argument("--immutable", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--label", action="append")
    s.add_argument("--annotation", action="append")
    s.add_argument("items", nargs="+")
    args = p.parse_args()
    {"keygen": keygen, "seal": seal}[args.cmd](args)


if __name__ == "__main__":
    main()
