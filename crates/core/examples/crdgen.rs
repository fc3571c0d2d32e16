//! Prints the SealedSecret CRD: `cargo run -p sealant-core --example crdgen > crds/sealedsecret.yaml`.
fn main() {
    print!("{}", sealant_core::crd::crd_yaml());
}
