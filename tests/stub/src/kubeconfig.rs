//! Kubeconfigs for the stubs: clusters by URL, one user with a bearer token.

/// One context, with a cluster of the same name.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub name: &'a str,
    pub server: &'a str,
    /// The context's `namespace`.
    pub namespace: Option<&'a str>,
    /// The cluster's `proxy-url`.
    pub proxy_url: Option<&'a str>,
}

impl<'a> Context<'a> {
    pub fn new(name: &'a str, server: &'a str) -> Context<'a> {
        Context {
            name,
            server,
            namespace: None,
            proxy_url: None,
        }
    }
}

/// `(name, server, namespace, proxy-url)`.
impl<'a> From<(&'a str, &'a str, Option<&'a str>, Option<&'a str>)> for Context<'a> {
    fn from(
        (name, server, namespace, proxy_url): (&'a str, &'a str, Option<&'a str>, Option<&'a str>),
    ) -> Context<'a> {
        Context {
            name,
            server,
            namespace,
            proxy_url,
        }
    }
}

/// The text of a kubeconfig holding `contexts`, `current` the current one; every context's
/// user is `tester` with the token `t0ken`.
pub fn kubeconfig(current: &str, contexts: &[Context<'_>]) -> String {
    let mut clusters = String::new();
    let mut named = String::new();
    for context in contexts {
        let Context { name, server, .. } = context;
        clusters.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {server}\n"
        ));
        if let Some(proxy) = context.proxy_url {
            clusters.push_str(&format!("    proxy-url: {proxy}\n"));
        }
        named.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: tester\n"
        ));
        if let Some(namespace) = context.namespace {
            named.push_str(&format!("    namespace: {namespace}\n"));
        }
    }
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n{clusters}\
         contexts:\n{named}users:\n- name: tester\n  user:\n    token: t0ken\n"
    )
}
