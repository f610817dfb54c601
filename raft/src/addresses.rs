//! Where each member is reached now. openraft keeps a peer client (and the
//! address it was made with) while the member stays, so a member whose address
//! changed (`SetNodes`) would be called at its old one: every call looks the
//! member up here instead. The book follows the membership; addresses given at
//! start (`--peer NAME=ADDR`, a whole cluster that moved) come first until the
//! membership itself names a new address for that member — before that, every
//! member is written at an address nobody listens on any more, and no leader
//! could be elected to write the new ones.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::types::{Member, NodeId};

/// The address book shared by the network and the node.
#[derive(Clone, Default)]
pub struct Addresses(Arc<RwLock<Book>>);

impl Addresses {
    /// A book that reaches the members named in `given` at the given
    /// addresses until the membership names a new address for them.
    pub fn with_given(given: impl IntoIterator<Item = (String, String)>) -> Self {
        Addresses(Arc::new(RwLock::new(Book::with_given(given))))
    }

    /// Record the membership's addresses.
    pub fn update<'a>(&self, members: impl IntoIterator<Item = (&'a NodeId, &'a Member)>) {
        self.0.write().expect("addresses lock").update(members);
    }

    /// Where to reach member `id` (named `name`), if the book knows.
    pub fn get(&self, id: NodeId, name: &str) -> Option<String> {
        self.0.read().expect("addresses lock").get(id, name)
    }
}

/// The book itself: what the membership says, and what start was given.
#[derive(Debug, Default)]
struct Book {
    /// The membership's address of each member.
    members: HashMap<NodeId, String>,
    /// Addresses given at start, by member name.
    given: HashMap<String, Given>,
}

/// An address given at start for a member.
#[derive(Debug)]
struct Given {
    addr: String,
    /// The membership's address for the member when the book first saw it:
    /// once the membership names another, it knows better than the start.
    replaced: Option<String>,
}

impl Book {
    fn with_given(given: impl IntoIterator<Item = (String, String)>) -> Self {
        let given = given.into_iter().map(|(name, addr)| (name, Given { addr, replaced: None })).collect();
        Book { members: HashMap::new(), given }
    }

    fn update<'a>(&mut self, members: impl IntoIterator<Item = (&'a NodeId, &'a Member)>) {
        for (id, m) in members {
            self.members.insert(*id, m.raft_addr.clone());
            let Some(g) = self.given.get_mut(&m.name) else { continue };
            match &g.replaced {
                None => g.replaced = Some(m.raft_addr.clone()),
                Some(old) if *old != m.raft_addr => {
                    self.given.remove(&m.name);
                }
                Some(_) => {}
            }
        }
    }

    fn get(&self, id: NodeId, name: &str) -> Option<String> {
        self.given.get(name).map(|g| g.addr.clone()).or_else(|| self.members.get(&id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, addr: &str) -> Member {
        Member { name: name.into(), raft_addr: addr.into(), api_addr: String::new() }
    }

    /// What the book answers for member 2 (`n2`) after start was given
    /// `given` and the membership named, one update after another, `updates`.
    fn n2_after(given: Option<&str>, updates: &[&str]) -> Option<String> {
        let book = Addresses::with_given(given.map(|a| ("n2".to_string(), a.to_string())));
        for addr in updates {
            let members = [(1, member("n1", "10.0.0.1:1")), (2, member("n2", addr))];
            book.update(members.iter().map(|(id, m)| (id, m)));
        }
        book.get(2, "n2")
    }

    /// (what, the address given, the membership's addresses in turn, the address used).
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], Option<&'a str>);

    #[test]
    fn given_addresses_come_first_until_the_membership_names_a_new_one() {
        let cases: &[Case] = &[
            ("nothing known", None, &[], None),
            ("the membership's address", None, &["old:1"], Some("old:1")),
            ("the membership's latest address", None, &["old:1", "new:1"], Some("new:1")),
            ("given, before the first update", Some("new:1"), &[], Some("new:1")),
            ("given, over the stale membership", Some("new:1"), &["old:1"], Some("new:1")),
            ("given, the stale membership seen again", Some("new:1"), &["old:1", "old:1"], Some("new:1")),
            ("the membership took the given address", Some("new:1"), &["old:1", "new:1"], Some("new:1")),
            ("the membership moved it elsewhere", Some("new:1"), &["old:1", "other:1"], Some("other:1")),
            ("moved again after taking it", Some("new:1"), &["old:1", "new:1", "third:1"], Some("third:1")),
        ];
        for (what, given, updates, want) in cases {
            assert_eq!(n2_after(*given, updates).as_deref(), *want, "{what}");
        }
    }

    #[test]
    fn an_address_given_for_one_member_leaves_the_others_alone() {
        let book = Addresses::with_given([("n2".to_string(), "new:2".to_string())]);
        let members = [(1, member("n1", "old:1")), (2, member("n2", "old:2"))];
        book.update(members.iter().map(|(id, m)| (id, m)));
        assert_eq!(book.get(1, "n1").as_deref(), Some("old:1"));
        assert_eq!(book.get(2, "n2").as_deref(), Some("new:2"));
    }
}
