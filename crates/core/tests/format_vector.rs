//! The test vector in docs/format.md opens as the document says.

use sealant_core::keys::{KeyRing, parse_identity_file};
use sealant_core::scope::{Scope, Target};
use sealant_core::value::{OpenError, open_value};

#[test]
fn docs_format_vector_opens() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md"))
        .unwrap();
    let vector = doc.split("## 7. Test vector").nth(1).expect("section 7");
    let line = |prefix: &str| {
        vector
            .lines()
            .find(|l| l.starts_with(prefix))
            .expect(prefix)
            .to_owned()
    };
    let identity = line("AGE-SECRET-KEY-1");
    let value = line("YWdl");
    let recipient = "age1unztmdwlarnnqqd30u7ytvgf4tg0kjxw4syyhw4na7nju03xpulq6w25ac".to_owned();
    let ring = KeyRing::from_identities(parse_identity_file(&identity).unwrap());
    assert_eq!(ring.recipients(), std::slice::from_ref(&recipient));
    let recorded = [recipient];
    let opened = open_value(
        &value,
        &recorded,
        Scope::Strict,
        &Target::new("prod", "db"),
        &ring,
    )
    .unwrap();
    assert_eq!(&opened.plaintext[..], b"hunter2");
    let moved = open_value(
        &value,
        &recorded,
        Scope::Strict,
        &Target::new("staging", "db"),
        &ring,
    );
    assert!(matches!(moved, Err(OpenError::Binding(_))));
}
