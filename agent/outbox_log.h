/*
 * agent/outbox_log.h: the agent's persisted outbox as an append-only
 * journal (docs/agent-protocol.md "Delivery rules", disconnected
 * operation).  Wraps a kframe_outbox (include/koreo/frame.h): every queued
 * message is appended to <state-dir>/outbox.log as one record and fsync'd;
 * every acknowledgement appends a small ack record; the file is rewritten
 * with only the unacknowledged messages (compaction) when the acknowledged
 * part outgrows the live part, so each send and ack costs O(1) I/O
 * (amortised) instead of rewriting the whole outbox.
 *
 * File: "KOBXLOG1", then records {type 'M' | 'A' (1 byte), sequence (u64
 * LE), length (u32 LE), payload (length bytes: the Envelope packed without
 * sequence/ack; empty for 'A'), FNV-1a 32 of the preceding bytes of the
 * record (u32 LE)}.  'A' records carry the highest acknowledged sequence.
 * A torn or corrupt tail (a crash mid-append) is cut off at the last good
 * record when the file is opened.  An older outbox.bin (kframe_outbox_save)
 * is migrated once.
 */
#ifndef KOREO_AGENT_OUTBOX_LOG_H
#define KOREO_AGENT_OUTBOX_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "koreo/frame.h"

typedef struct kobl kobl;

/* Open (or create, 0600) <dir>/outbox.log and rebuild the outbox from it,
 * bounded by max_bytes as kframe_outbox_new.  NULL with a message in err
 * (errlen bytes) when it cannot be read or written. */
kobl *kobl_open(const char *dir, size_t max_bytes, char *err, size_t errlen);
/* The outbox (borrowed; use it for next/count/...; ack and rewind go
 * through kobl_ack / kobl_rewind so the journal follows). */
kframe_outbox *kobl_outbox(kobl *l);
/* Queue a copy of env (as kframe_outbox_push) and append it durably.
 * Returns its sequence, or 0 with err filled (the message is then not
 * queued). */
uint64_t kobl_push(kobl *l, const kframe_envelope *env, kframe_error *err);
/* kframe_outbox_ack / kframe_outbox_rewind, journaled.  Return what the
 * outbox functions return (ack: messages dropped). */
size_t kobl_ack(kobl *l, uint64_t ack);
void kobl_rewind(kobl *l, uint64_t peer_acked);
/* Journal size in bytes and compactions so far (tests, metrics). */
size_t kobl_file_bytes(const kobl *l);
unsigned kobl_compactions(const kobl *l);
void kobl_close(kobl *l);

#endif
