use std::sync::Arc;

use super::Account;
use crate::Error;

/// What a rule is about: go-micro's resource (type, name, endpoint). `*` matches anything;
/// an endpoint `Greeter.*` matches every endpoint of `Greeter`.
///
/// ```
/// use micro::auth::Resource;
/// let r = Resource::service("greeter", "Greeter.*");
/// assert!(r.matches(&Resource::service("greeter", "Greeter.Hello")));
/// assert!(!r.matches(&Resource::service("billing", "Greeter.Hello")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    /// `service` for calls.
    pub kind: String,
    /// The service name.
    pub name: String,
    /// The endpoint's wire name.
    pub endpoint: String,
}

impl Resource {
    /// An endpoint of a service (type `service`).
    ///
    /// See the [type-level example](Self).
    pub fn service(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            kind: "service".into(),
            name: name.into(),
            endpoint: endpoint.into(),
        }
    }

    /// Every resource.
    ///
    /// ```
    /// use micro::auth::Resource;
    /// assert!(Resource::any().matches(&Resource::service("a", "B.C")));
    /// ```
    pub fn any() -> Self {
        Self {
            kind: "*".into(),
            name: "*".into(),
            endpoint: "*".into(),
        }
    }

    /// Whether this pattern covers `resource`.
    ///
    /// See the [type-level example](Self).
    pub fn matches(&self, resource: &Resource) -> bool {
        fn field(pattern: &str, value: &str) -> bool {
            pattern == "*" || pattern == value
        }
        let endpoint = self.endpoint == "*"
            || self.endpoint == resource.endpoint
            || self.endpoint.strip_suffix(".*").is_some_and(|handler| {
                resource
                    .endpoint
                    .strip_prefix(handler)
                    .is_some_and(|rest| rest.starts_with('.'))
            });
        field(&self.kind, &resource.kind) && field(&self.name, &resource.name) && endpoint
    }
}

/// Whether a rule lets callers in or keeps them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Let in.
    Granted,
    /// Keep out.
    Denied,
}

/// One access rule, as go-micro's `auth.Rule`.
///
/// The scope says who it applies to: `""` everyone (no token needed), `"*"` any
/// authenticated account, anything else an account holding that scope.
///
/// ```
/// use micro::auth::{Access, Resource, Rule};
/// let public = Rule::new(Resource::service("greeter", "Greeter.Hello"), "", Access::Granted);
/// let admins = Rule::new(Resource::service("greeter", "*"), "admin", Access::Granted).priority(10);
/// # drop((public, admins));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it is about.
    pub resource: Resource,
    /// Who it applies to.
    pub scope: String,
    /// Granted or denied.
    pub access: Access,
    /// Higher first.
    pub priority: i32,
}

impl Rule {
    /// A rule of priority 0.
    ///
    /// See the [type-level example](Self).
    pub fn new(resource: Resource, scope: impl Into<String>, access: Access) -> Self {
        Self {
            resource,
            scope: scope.into(),
            access,
            priority: 0,
        }
    }

    /// Sets its priority: among the rules matching a call, the highest decides.
    ///
    /// See the [type-level example](Self).
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Whether it applies to `account` (`None`: a caller without a token).
    fn applies_to(&self, account: Option<&Account>) -> bool {
        match (self.scope.as_str(), account) {
            ("", _) => true,
            ("*", account) => account.is_some(),
            (scope, Some(account)) => account.scopes.iter().any(|s| s == scope),
            (_, None) => false,
        }
    }
}

/// A set of [`Rule`]s, ordered by priority.
///
/// The default grants every authenticated account everything (go-micro's default rule),
/// and nothing to callers without a token.
///
/// ```
/// use micro::auth::{Access, Account, Resource, Rule, Rules};
///
/// let rules = Rules::new([
///     Rule::new(Resource::service("greeter", "Greeter.Hello"), "", Access::Granted),
///     Rule::new(Resource::service("greeter", "*"), "admin", Access::Granted),
/// ]);
/// let hello = Resource::service("greeter", "Greeter.Hello");
/// let reset = Resource::service("greeter", "Greeter.Reset");
/// assert!(rules.verify(None, &hello).is_ok());
/// assert_eq!(rules.verify(None, &reset).unwrap_err().code, 401);
/// assert_eq!(rules.verify(Some(&Account::new("bob")), &reset).unwrap_err().code, 403);
/// assert!(rules.verify(Some(&Account::new("ada").scope("admin")), &reset).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Rules {
    rules: Arc<[Rule]>,
}

impl Default for Rules {
    fn default() -> Self {
        Self::new([Rule::new(Resource::any(), "*", Access::Granted)])
    }
}

impl Rules {
    /// These rules.
    ///
    /// See the [type-level example](Self).
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut rules: Vec<Rule> = rules.into_iter().collect();
        // Stable: among equal priorities, the order given decides.
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        Self {
            rules: rules.into(),
        }
    }

    /// Whether `account` may use `resource`: the highest-priority rule that matches both
    /// decides; none matching means no.
    ///
    /// # Errors
    /// `401 unauthorized` when refused a caller without a token, `403 forbidden` when refused
    /// an account.
    ///
    /// See the [type-level example](Self).
    pub fn verify(&self, account: Option<&Account>, resource: &Resource) -> Result<(), Error> {
        let decision = self
            .rules
            .iter()
            .find(|r| r.resource.matches(resource) && r.applies_to(account))
            .map(|r| r.access);
        match (decision, account) {
            (Some(Access::Granted), _) => Ok(()),
            (_, None) => Err(Error::unauthorized(
                "micro.auth",
                format_args!(
                    "{} {} needs a bearer token",
                    resource.name, resource.endpoint
                ),
            )),
            (_, Some(account)) => Err(Error::forbidden(
                "micro.auth",
                format_args!(
                    "account {} may not call {} {}",
                    account.id, resource.name, resource.endpoint
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matching_rule_of_highest_priority_decides() {
        let reset = Resource::service("greeter", "Greeter.Reset");
        let hello = Resource::service("greeter", "Greeter.Hello");
        let admin = Account::new("ada").scope("admin");
        let rules = Rules::new([
            Rule::new(Resource::any(), "*", Access::Granted),
            Rule::new(
                Resource::service("greeter", "Greeter.Reset"),
                "*",
                Access::Denied,
            )
            .priority(5),
            Rule::new(
                Resource::service("greeter", "Greeter.Reset"),
                "admin",
                Access::Granted,
            )
            .priority(10),
        ]);
        assert!(rules.verify(Some(&admin), &reset).is_ok());
        assert_eq!(
            rules
                .verify(Some(&Account::new("bob")), &reset)
                .unwrap_err()
                .code,
            403
        );
        assert!(rules.verify(Some(&Account::new("bob")), &hello).is_ok());
        assert_eq!(rules.verify(None, &hello).unwrap_err().code, 401);
    }

    #[test]
    fn no_matching_rule_means_no_access() {
        let rules = Rules::new([]);
        let r = Resource::service("a", "B.C");
        assert_eq!(rules.verify(None, &r).unwrap_err().code, 401);
        assert_eq!(
            rules.verify(Some(&Account::new("x")), &r).unwrap_err().code,
            403
        );
    }

    #[test]
    fn an_endpoint_wildcard_covers_one_handler_only() {
        let pattern = Resource::service("*", "Greeter.*");
        assert!(pattern.matches(&Resource::service("x", "Greeter.Hello")));
        assert!(!pattern.matches(&Resource::service("x", "GreeterAdmin.Hello")));
        assert!(!pattern.matches(&Resource::service("x", "Greeter")));
    }
}
