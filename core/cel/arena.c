/*
 * core/cel/arena.c: the bump allocator that holds a compiled CEL program's
 * AST (cel_arena, declared in cel_impl.h), and the registry of the literal
 * values (kv) the AST refers to, which the arena releases when it is freed.
 *
 * Layout: a singly linked list of blocks.  The first block ever allocated
 * stays at the head of the list for the arena's lifetime and carries the
 * literal registry, so `struct cel_arena` needs no field beyond `blocks`.
 * Later blocks are linked in after the head.  Allocations are zeroed and
 * 16-byte aligned; a request larger than a quarter of the block size gets
 * a block of its own.
 */
#include "cel_impl.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_FIRST_BLOCK 1024u /* most expressions fit: few pages touched */
#define ARENA_BLOCK 8192u       /* later blocks double up to this size */

struct cel_arena_block {
  struct cel_arena_block *next;
  size_t size; /* usable bytes in data[] */
  size_t used;
  /* head block only: literal values to kv_unref in cel_arena_free */
  kv **lits;
  size_t nlits, caplits;
  _Alignas(16) unsigned char data[];
};

static size_t round_up(size_t n) { return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1); }

static struct cel_arena_block *block_new(size_t size) {
  struct cel_arena_block *b = aligned_alloc(ARENA_ALIGN, round_up(sizeof *b + size));
  if (!b) kv_oom();
  memset(b, 0, sizeof *b);
  b->size = size;
  return b;
}

/* The head block, created on first use. */
static struct cel_arena_block *arena_head(cel_arena *a) {
  if (!a->blocks) a->blocks = block_new(ARENA_FIRST_BLOCK);
  return a->blocks;
}

/* cel_arena_alloc: `n` zeroed bytes, 16-byte aligned, owned by the arena
 * (freed by cel_arena_free).  Never returns NULL (aborts via kv_oom on
 * allocation failure).  n == 0 returns a valid unique pointer. */
void *cel_arena_alloc(cel_arena *a, size_t n) {
  struct cel_arena_block *head = arena_head(a);
  size_t need = round_up(n ? n : 1);
  if (need < n) kv_oom(); /* size_t overflow */
  /* the block being filled: the most recent ordinary block after the
   * head, or the head itself while it is the only one */
  struct cel_arena_block *cur = head->next ? head->next : head;
  if (cur->size - cur->used < need) {
    struct cel_arena_block *b;
    if (need > ARENA_BLOCK / 4) {
      /* oversized: a block of its own, linked after the fill block */
      b = block_new(need);
      b->next = cur->next;
      cur->next = b;
      b->used = need;
      memset(b->data, 0, need);
      return b->data;
    }
    size_t size = cur->size * 2 > ARENA_BLOCK ? ARENA_BLOCK : cur->size * 2;
    b = block_new(size < need ? need : size);
    b->next = head->next;
    head->next = b;
    cur = b;
  }
  void *p = cur->data + cur->used;
  cur->used += need;
  memset(p, 0, need);
  return p;
}

/* cel_arena_strndup: a NUL-terminated copy of the `n` bytes at `s` (which
 * may contain no NUL within n), owned by the arena. */
char *cel_arena_strndup(cel_arena *a, const char *s, size_t n) {
  if (n == SIZE_MAX) kv_oom();
  char *d = cel_arena_alloc(a, n + 1);
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

/* cel_arena_keep: the arena takes over one reference to `v` and drops it
 * in cel_arena_free.  Used for the values of CN_LIT nodes (the AST
 * borrows them).  Returns `v`.  NULL is ignored. */
kv *cel_arena_keep(cel_arena *a, kv *v) {
  if (!v) return v;
  struct cel_arena_block *h = arena_head(a);
  if (h->nlits == h->caplits) {
    size_t cap = h->caplits ? h->caplits * 2 : 16;
    kv **n = realloc(h->lits, cap * sizeof *n);
    if (!n) kv_oom();
    h->lits = n;
    h->caplits = cap;
  }
  h->lits[h->nlits++] = v;
  return v;
}

/* cel_arena_free: releases every block and every kept literal; the arena
 * is empty afterwards and may be reused.  Safe on a zeroed arena. */
void cel_arena_free(cel_arena *a) {
  struct cel_arena_block *b = a->blocks;
  if (b) {
    for (size_t i = 0; i < b->nlits; i++)
      kv_unref(b->lits[i]);
    free(b->lits);
  }
  while (b) {
    struct cel_arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->blocks = NULL;
}
