"""The audit trail: an append-only, hash-chained log of changes (``log``) and the answer to
"which release, configured how and approved by whom, produced this trace" (``trace``)."""

from sluice.audit.log import AuditEntry, ChainCheck, append_audit, key_actor, list_audit, local_actor, verify_chain

__all__ = ["AuditEntry", "ChainCheck", "append_audit", "key_actor", "list_audit", "local_actor", "verify_chain"]
