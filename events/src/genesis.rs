//! The genesis `app_state`: the founding members of a federation.

use serde::{Deserialize, Serialize};

use crate::model::{InvalidField, MemberInfo};
use crate::test_keys;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAppState {
    pub members: Vec<MemberInfo>,
}

impl GenesisAppState {
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.members.is_empty() {
            return Err(InvalidField {
                field: "members",
                reason: "a federation needs at least one founding member".into(),
            });
        }
        for (i, member) in self.members.iter().enumerate() {
            member.validate()?;
            if self.members[..i].iter().any(|m| m.id == member.id) {
                return Err(InvalidField {
                    field: "members",
                    reason: format!("{} listed twice", member.id),
                });
            }
        }
        Ok(())
    }
}

/// A genesis app_state whose founding members use the published test keys of
/// [`crate::test_keys`]; for local nets and tests only.
pub fn demo_app_state(members: usize) -> serde_json::Value {
    let state = GenesisAppState {
        members: (0..members as u32).map(test_keys::member_info).collect(),
    };
    serde_json::to_value(state).unwrap_or(serde_json::Value::Null)
}
