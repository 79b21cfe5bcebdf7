//! Roster commands: removing members (with the new key epoch), approvals under a
//! policy, roles, and listing and revoking invites.

use kith_core::{CoreError, ProposalAction, RemoveOutcome, RequestStatus, Role};
use kith_ipc::{AuthorInfo, ErrorKind, ExposureInfo, InviteInfo, PendingInfo, Reply};

use crate::node::{Node, Outcome, Refusal, now_ms};
use crate::views;

/// The answer to a roster change that waits for more stewards' approvals.
fn pending_reply(member: &str, proposal: String, missing: u32) -> Reply {
    Reply::Removal {
        member: member.to_string(),
        outcome: "pending".into(),
        proposal: Some(proposal),
        missing,
    }
}

/// The answer to a policy change carried out.
fn policy_done() -> Reply {
    Reply::Removal {
        member: String::new(),
        outcome: "done".into(),
        proposal: None,
        missing: 0,
    }
}

/// A fresh proposal id (10 characters, like an item id).
fn proposal_id() -> String {
    kith_core::ItemId::from_random(rand::random()).to_string()
}

impl Node {
    /// `kith remove MEMBER`: under a policy of one approval, removes the member in one
    /// change with a new epoch wrapped for everyone else, sealed with the key from before
    /// (which the others hold); otherwise records this steward's approval.
    pub(crate) fn remove(
        &mut self,
        selector: Option<&str>,
        member: &str,
        dry_run: bool,
    ) -> Result<Outcome, Refusal> {
        let index = self.circle_index(selector)?;
        let circle = self.circle_at(index)?;
        let member = circle.doc.resolve_member(member)?;
        circle.doc.check_removal(&member)?;
        if dry_run {
            return Ok(Outcome::Reply(Reply::Exposure(Box::new(
                self.exposure(index, &member)?,
            ))));
        }
        let epoch = self.epoch_without(index, &member)?;
        let id = proposal_id();
        self.carry_out(
            index,
            &member,
            |doc, epoch, now| doc.remove_member(&member, epoch, &id, now),
            epoch,
        )
    }

    /// `kith approve ID`: a pending removal, policy change or invite.
    pub(crate) fn approve(&mut self, selector: Option<&str>, id: &str) -> Result<Outcome, Refusal> {
        let index = self.circle_index(selector)?;
        let circle = self.circle_at(index)?;
        let id = id.trim().to_ascii_lowercase();
        if let Some(invite) = circle
            .doc
            .invites()
            .into_iter()
            .find(|i| !id.is_empty() && i.id.starts_with(&id))
        {
            let now = now_ms();
            let circle = self
                .circles
                .get_mut(index)
                .ok_or_else(crate::node::no_circle)?;
            let change = circle.doc.approve_invite(&invite.id, now)?;
            let answer = Reply::Done { id: invite.id };
            let outcome = self.seal_outcome(index, &change, answer, None)?;
            self.refresh_join_window();
            return Ok(outcome);
        }
        let proposal = circle
            .doc
            .proposals()
            .into_iter()
            .find(|p| !id.is_empty() && p.id.starts_with(&id) && !p.done)
            .ok_or_else(|| Refusal(ErrorKind::NotFound, format!("nothing pending with id {id}")))?;
        match proposal.action {
            ProposalAction::Remove(member) => {
                circle.doc.check_removal(&member)?;
                let epoch = self.epoch_without(index, &member)?;
                let pid = proposal.id.clone();
                self.carry_out(
                    index,
                    &member,
                    |doc, epoch, now| doc.approve(&pid, epoch, now),
                    epoch,
                )
            }
            ProposalAction::Policy(k) => {
                let now = now_ms();
                let circle = self
                    .circles
                    .get_mut(index)
                    .ok_or_else(crate::node::no_circle)?;
                let outcome = circle.doc.set_policy(k, &proposal.id, now)?;
                self.seal_approval(index, "", outcome, policy_done())
            }
            ProposalAction::Role(member, role) => {
                let now = now_ms();
                let circle = self
                    .circles
                    .get_mut(index)
                    .ok_or_else(crate::node::no_circle)?;
                let outcome = circle.doc.change_role(&member, role, &proposal.id, now)?;
                let done = Reply::Done { id: member.clone() };
                self.seal_approval(index, &member, outcome, done)
            }
        }
    }

    /// `kith circle policy --approvals K`.
    pub(crate) fn policy(
        &mut self,
        selector: Option<&str>,
        approvals: u32,
    ) -> Result<Outcome, Refusal> {
        let index = self.circle_index(selector)?;
        let now = now_ms();
        let circle = self
            .circles
            .get_mut(index)
            .ok_or_else(crate::node::no_circle)?;
        let outcome = circle.doc.set_policy(approvals, &proposal_id(), now)?;
        self.seal_approval(index, "", outcome, policy_done())
    }

    /// Seals a roster change made under the approvals policy: answered with `done` when
    /// it was carried out, or with the proposal and how many approvals it still needs.
    fn seal_approval(
        &mut self,
        index: usize,
        member: &str,
        outcome: RemoveOutcome,
        done: Reply,
    ) -> Result<Outcome, Refusal> {
        match outcome {
            RemoveOutcome::Removed(change) => {
                tracing::info!("a roster change was carried out");
                self.seal_outcome(index, &change, done, None)
            }
            RemoveOutcome::Pending {
                change,
                proposal,
                missing,
            } => {
                let answer = pending_reply(member, proposal, missing);
                self.seal_outcome(index, &change, answer, None)
            }
        }
    }

    /// A new epoch for every current member but `leaving`, with its key; and the epoch
    /// the members hold now (what the removal is sealed with).
    fn epoch_without(
        &self,
        index: usize,
        leaving: &str,
    ) -> Result<(kith_crypto::EpochKey, kith_core::NewEpoch, u32), Refusal> {
        let circle = self.circle_at(index)?;
        let plan = circle.doc.key_plan(
            &circle.keys.usable(&circle.doc),
            now_ms(),
            crate::epochs::ROTATION_PERIOD_MS,
        );
        let recipients: Vec<String> = plan
            .recipients
            .iter()
            .filter(|r| r.as_str() != leaving)
            .cloned()
            .collect();
        let seal_with = plan
            .common_epoch(&circle.keys.usable(&circle.doc), &recipients)
            .or(plan.write_epoch)
            .ok_or_else(|| {
                Refusal(
                    ErrorKind::Internal,
                    "this node holds no key the other members share".into(),
                )
            })?;
        let (key, epoch) =
            circle
                .keys
                .make_epoch(&self.identity, &plan, &recipients, &mut rand::rng())?;
        Ok((key, epoch, seal_with))
    }

    /// Writes a removal (or an approval of one) made by `write`, keeping the new epoch's
    /// key (durably, before the change is sealed) if the member was removed.
    fn carry_out(
        &mut self,
        index: usize,
        member: &str,
        write: impl FnOnce(
            &mut kith_core::Circle,
            &kith_core::NewEpoch,
            i64,
        ) -> Result<RemoveOutcome, CoreError>,
        (key, epoch, seal_with): (kith_crypto::EpochKey, kith_core::NewEpoch, u32),
    ) -> Result<Outcome, Refusal> {
        let now = now_ms();
        let circle = self
            .circles
            .get_mut(index)
            .ok_or_else(crate::node::no_circle)?;
        match write(&mut circle.doc, &epoch, now)? {
            RemoveOutcome::Removed(change) => {
                circle.keys.insert(epoch.id, key);
                let record = kith_store::CircleRecord {
                    id: circle.id,
                    epoch_keys: circle.keys.records(),
                };
                tokio::task::block_in_place(|| self.store.put_circle(&record))
                    .map_err(|e| Refusal(ErrorKind::Internal, e.to_string()))?;
                tracing::info!("removed a member and rotated the circle key");
                let answer = Reply::Removal {
                    member: member.to_string(),
                    outcome: "removed".into(),
                    proposal: None,
                    missing: 0,
                };
                let outcome = self.seal_outcome_with(index, seal_with, &change, answer, None)?;
                self.net.keys_dirty = true;
                self.refresh_allowed();
                self.refresh_join_window();
                Ok(outcome)
            }
            RemoveOutcome::Pending {
                change,
                proposal,
                missing,
            } => {
                let answer = pending_reply(member, proposal, missing);
                self.seal_outcome(index, &change, answer, None)
            }
        }
    }

    /// What removing `member` leaves them (what they could read until now) and takes.
    fn exposure(&self, index: usize, member: &str) -> Result<ExposureInfo, Refusal> {
        let circle = self.circle_at(index)?;
        let doc = &circle.doc;
        let view = doc
            .members()
            .into_iter()
            .find(|m| m.id == member)
            .ok_or_else(|| CoreError::NotMember(member.to_string()))?;
        let now = now_ms();
        let mut info = ExposureInfo {
            member: AuthorInfo {
                id: view.id.clone(),
                name: view.name.clone(),
            },
            role: view.role.as_str().to_string(),
            approvals_needed: doc.policy(),
            ..ExposureInfo::default()
        };
        doc.visit_items(|item| {
            match &item.audience {
                None => info.keeps_items += 1,
                Some(readers) if item.author == member || readers.iter().any(|r| r == member) => {
                    info.keeps_private_items += 1;
                }
                Some(_) => {}
            }
            if item.author == member {
                info.own_items += 1;
            }
            let open = matches!(
                item.status_at(now),
                Some(RequestStatus::Open | RequestStatus::Claimed)
            ) || item.kind == kith_core::ItemKind::Offer;
            if open && item.all_claims().any(|c| c.member == member) {
                info.open_claims += 1;
            }
        });
        let plan = doc.key_plan(&circle.keys.held(), now, crate::epochs::ROTATION_PERIOD_MS);
        info.keeps_epochs = plan
            .holders
            .values()
            .filter(|holders| holders.contains(member))
            .count();
        if view.role == Role::Steward {
            info.invites_voided = doc
                .invites()
                .into_iter()
                .filter(|i| {
                    i.creator == member && !i.revoked && i.used < i.uses && i.expires_at > now
                })
                .count();
        }
        Ok(info)
    }

    /// `kith pending`: removals and policy changes waiting for approvals, and invites
    /// waiting for them.
    pub(crate) fn pending(&self, selector: Option<&str>) -> Result<Outcome, Refusal> {
        let circle = self.circle(selector)?;
        let doc = &circle.doc;
        let policy = doc.policy();
        let who = |id: &str| AuthorInfo {
            id: id.to_string(),
            name: doc.member_name(id).unwrap_or_default(),
        };
        let mut pending = Vec::new();
        for p in doc.proposals().into_iter().filter(|p| !p.done) {
            let (action, target, target_name) = match &p.action {
                ProposalAction::Remove(m) => ("remove", m.clone(), doc.member_name(m)),
                ProposalAction::Policy(k) => ("policy", k.to_string(), None),
                ProposalAction::Role(m, role) => (
                    if *role == Role::Steward {
                        "appoint"
                    } else {
                        "step down"
                    },
                    m.clone(),
                    doc.member_name(m),
                ),
            };
            pending.push(PendingInfo {
                id: p.id.clone(),
                action: action.into(),
                target,
                target_name,
                proposer: who(&p.proposer),
                approvals: p.approvals.iter().map(|a| who(a)).collect(),
                needed: policy,
                created_at: views::rfc3339(p.created_at),
            });
        }
        let now = now_ms();
        if policy > 1 {
            for invite in doc.invites() {
                let live = !invite.revoked && invite.used < invite.uses && invite.expires_at > now;
                if live && (invite.approvals.len() as u32) < policy {
                    pending.push(PendingInfo {
                        id: invite.id.clone(),
                        action: "invite".into(),
                        target: invite.id.clone(),
                        target_name: None,
                        proposer: who(&invite.creator),
                        approvals: invite.approvals.iter().map(|a| who(a)).collect(),
                        needed: policy,
                        created_at: views::rfc3339(invite.created_at),
                    });
                }
            }
        }
        Ok(Outcome::Reply(Reply::Pending { policy, pending }))
    }

    /// `kith role MEMBER steward|member`.
    pub(crate) fn set_role(
        &mut self,
        selector: Option<&str>,
        member: &str,
        role: &str,
    ) -> Result<Outcome, Refusal> {
        let role = match role.trim() {
            "steward" => Role::Steward,
            "member" => Role::Member,
            other => {
                return Err(Refusal(
                    ErrorKind::Usage,
                    format!("unknown role {other:?}; expected steward or member"),
                ));
            }
        };
        let index = self.circle_index(selector)?;
        let now = now_ms();
        let circle = self
            .circles
            .get_mut(index)
            .ok_or_else(crate::node::no_circle)?;
        let member = circle.doc.resolve_member(member)?;
        let outcome = circle.doc.change_role(&member, role, &proposal_id(), now)?;
        let done = Reply::Done { id: member.clone() };
        self.seal_approval(index, &member, outcome, done)
    }

    /// `kith invite list`.
    pub(crate) fn invites(&self, selector: Option<&str>) -> Result<Outcome, Refusal> {
        let circle = self.circle(selector)?;
        let doc = &circle.doc;
        let policy = doc.policy() as usize;
        let now = now_ms();
        let invites = doc
            .invites()
            .into_iter()
            .map(|i| {
                let state = if i.revoked {
                    "revoked"
                } else if i.used >= i.uses {
                    "used"
                } else if i.expires_at <= now {
                    "expired"
                } else if i.approvals.len() < policy {
                    "awaiting approval"
                } else {
                    "open"
                };
                InviteInfo {
                    creator: AuthorInfo {
                        id: i.creator.clone(),
                        name: doc.member_name(&i.creator).unwrap_or_default(),
                    },
                    created_at: views::rfc3339(i.created_at),
                    expires_at: views::rfc3339(i.expires_at),
                    uses: i.uses,
                    used: i.used,
                    state: state.into(),
                    approvals: i.approvals.len(),
                    id: i.id,
                }
            })
            .collect();
        Ok(Outcome::Reply(Reply::Invites { invites }))
    }

    /// `kith invite revoke ID` (an id or a unique prefix of one).
    pub(crate) fn revoke_invite(
        &mut self,
        selector: Option<&str>,
        id: &str,
    ) -> Result<Outcome, Refusal> {
        let index = self.circle_index(selector)?;
        let circle = self.circle_at(index)?;
        let prefix = id.trim().to_ascii_lowercase();
        let matches: Vec<String> = circle
            .doc
            .invites()
            .into_iter()
            .filter(|i| !prefix.is_empty() && i.id.starts_with(&prefix))
            .map(|i| i.id)
            .collect();
        let id = match matches.as_slice() {
            [one] => one.clone(),
            [] => return Err(CoreError::UnknownInvite(prefix).into()),
            _ => {
                return Err(Refusal(
                    ErrorKind::Usage,
                    format!("invite id {prefix} is ambiguous; give more characters"),
                ));
            }
        };
        let now = now_ms();
        let circle = self
            .circles
            .get_mut(index)
            .ok_or_else(crate::node::no_circle)?;
        let change = circle.doc.revoke_invite(&id, now)?;
        let outcome = self.seal_outcome(index, &change, Reply::Done { id }, None)?;
        self.refresh_join_window();
        Ok(outcome)
    }
}
