//! Properties of the sealed value format over random keys, values, scopes and recipient sets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use sealant_core::keys::{KeyRing, generate_key};
use sealant_core::scope::{Binding, Scope, Target};
use sealant_core::value::{OpenError, open_value, seal_value};

fn scope() -> impl Strategy<Value = Scope> {
    prop::sample::select(Scope::ALL.to_vec())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]"
}

/// Where a value is moved to, relative to where it was sealed: the same name, a similar one
/// (one character more, or the last one changed), or an unrelated one. Drawn independently,
/// two names would almost never be equal, and "same" is the case a scope must allow.
fn moved(base: String) -> impl Strategy<Value = String> {
    let longer = format!("{base}x");
    let mut changed = base.clone();
    let last = changed.pop().unwrap_or('a');
    changed.push(if last == '0' { '1' } else { '0' });
    prop_oneof![Just(base), Just(longer), Just(changed), name()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Any recipient of any recipient set opens any value sealed for any place, in that place.
    #[test]
    fn round_trip(
        value in prop::collection::vec(any::<u8>(), 0..2048),
        scope in scope(),
        ns in name(),
        obj in name(),
        n_recipients in 1usize..5,
        opener in 0usize..5,
        extra_keys in 0usize..8,
    ) {
        let keys: Vec<_> = (0..n_recipients).map(|_| generate_key("t")).collect();
        let recipients: Vec<_> = keys.iter().map(|k| k.recipient.clone()).collect();
        let target = Target::new(ns, obj);
        let sealed = seal_value(&value, &Binding::new(scope, &target).unwrap(), &recipients).unwrap();
        // The opener also holds unrelated old keys: they must not matter.
        let mut ring = KeyRing::from_identities((0..extra_keys).map(|_| generate_key("t").identity));
        let key = &keys[opener % n_recipients];
        ring.insert(key.identity.clone());
        let opened = open_value(&sealed.ciphertext, &sealed.recipients, scope, &target, &ring).unwrap();
        prop_assert_eq!(&opened.plaintext[..], &value[..]);
        prop_assert_eq!(opened.opened_with, key.recipient.to_string());
    }

    /// Changing any single byte of a sealed value makes it fail to open.
    #[test]
    fn any_single_byte_change_fails(
        value in prop::collection::vec(any::<u8>(), 1..256),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = generate_key("t");
        let target = Target::new("prod", "db");
        let binding = Binding::new(Scope::Strict, &target).unwrap();
        let sealed = seal_value(&value, &binding, std::slice::from_ref(&key.recipient)).unwrap();
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        // Where the payload starts, found before the flip (which may hit the MAC line itself).
        let mac_line = bytes.windows(4).position(|w| w == b"\n---").unwrap() + 1;
        let payload = mac_line + bytes[mac_line..].iter().position(|b| *b == b'\n').unwrap() + 1;
        let i = position.index(bytes.len());
        bytes[i] ^= flip;
        let tampered = BASE64.encode(&bytes);
        let ring = KeyRing::from_identities([key.identity]);
        let err = open_value(&tampered, &sealed.recipients, Scope::Strict, &target, &ring).unwrap_err();
        // A change in the payload is the payload's tag failing.
        if i >= payload {
            prop_assert_eq!(err, OpenError::PayloadTampered);
        } else {
            prop_assert!(
                matches!(err, OpenError::NotAgeFile | OpenError::KeyMismatch(_) | OpenError::HeaderTampered | OpenError::PayloadTampered),
                "{:?}", err
            );
        }
        // Truncation fails too.
        bytes.truncate(i);
        prop_assert!(open_value(&BASE64.encode(&bytes), &sealed.recipients, Scope::Strict, &target, &ring).is_err());
    }

    /// Relocation fails exactly as each scope defines: strict binds namespace and name,
    /// namespace-wide the namespace, cluster-wide nothing.
    #[test]
    fn relocation(
        scope in scope(),
        (ns, ns2) in name().prop_flat_map(|n| (Just(n.clone()), moved(n))),
        (obj, obj2) in name().prop_flat_map(|n| (Just(n.clone()), moved(n))),
    ) {
        let key = generate_key("t");
        let here = Target::new(ns.clone(), obj.clone());
        let sealed = seal_value(b"v", &Binding::new(scope, &here).unwrap(), std::slice::from_ref(&key.recipient)).unwrap();
        let ring = KeyRing::from_identities([key.identity]);
        let moved = Target::new(ns2.clone(), obj2.clone());
        let opens = open_value(&sealed.ciphertext, &sealed.recipients, scope, &moved, &ring).is_ok();
        let allowed = match scope {
            Scope::Strict => ns == ns2 && obj == obj2,
            Scope::NamespaceWide => ns == ns2,
            Scope::ClusterWide => true,
        };
        prop_assert_eq!(opens, allowed);
        // The declared scope cannot be changed after sealing.
        for other in Scope::ALL.into_iter().filter(|s| *s != scope) {
            prop_assert!(open_value(&sealed.ciphertext, &sealed.recipients, other, &here, &ring).is_err());
        }
    }
}

/// Every scope against every kind of move, once each: the property above draws them at random.
#[test]
fn each_scope_allows_exactly_its_moves() {
    let key = generate_key("t");
    let ring = KeyRing::from_identities([key.identity.clone()]);
    let here = Target::new("prod", "db");
    let moves = [
        (Target::new("prod", "db"), [true, true, true]),
        (Target::new("prod", "db2"), [false, true, true]),
        (Target::new("prod2", "db"), [false, false, true]),
    ];
    for (i, scope) in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide]
        .into_iter()
        .enumerate()
    {
        let binding = Binding::new(scope, &here).unwrap();
        let sealed = seal_value(b"v", &binding, std::slice::from_ref(&key.recipient)).unwrap();
        for (to, allowed) in &moves {
            let opens = open_value(&sealed.ciphertext, &sealed.recipients, scope, to, &ring);
            assert_eq!(opens.is_ok(), allowed[i], "{scope} to {to:?}");
        }
    }
}

/// A header MAC that does not match is reported as the header tampered with, exactly.
#[test]
fn a_changed_header_mac_is_header_tampering() {
    let key = generate_key("t");
    let target = Target::new("prod", "db");
    let binding = Binding::new(Scope::Strict, &target).unwrap();
    let sealed = seal_value(b"v", &binding, std::slice::from_ref(&key.recipient)).unwrap();
    let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
    // The MAC's first base64 character, swapped for another valid one.
    let at = bytes.windows(4).position(|w| w == b"\n---").unwrap() + 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let ring = KeyRing::from_identities([key.identity]);
    let err = open_value(
        &BASE64.encode(&bytes),
        &sealed.recipients,
        Scope::Strict,
        &target,
        &ring,
    )
    .unwrap_err();
    assert_eq!(err, OpenError::HeaderTampered);
}
