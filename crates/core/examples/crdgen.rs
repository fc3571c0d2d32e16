//! Writes the SealedSecret CRD where it is checked in: crds/sealedsecret.yaml and its copy
//! deploy/sealedsecret-crd.yaml (kustomize cannot load files outside deploy/).
//!
//!     cargo run -p sealant-core --example crdgen
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = sealant_core::crd::crd_yaml();
    for file in ["crds/sealedsecret.yaml", "deploy/sealedsecret-crd.yaml"] {
        std::fs::write(root.join(file), &yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("wrote {file}");
    }
}
