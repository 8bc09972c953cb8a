/*
 * test_greedy.h — greedy decoding against a reference's tokens, for the
 * tests that compare orion's generation with a PyTorch reference's.
 */
#ifndef ORION_TEST_GREEDY_H
#define ORION_TEST_GREEDY_H

#include "test_util.h"

#include <orion.h>

/* Greedy-decodes n tokens from `logits` (n_vocab floats: the prompt's last
 * position; the first new token goes at position pos; logits is
 * overwritten) and returns how many of them, from the first, equal ref's.
 * Decoding goes on past a difference, so a failed eval is caught anyway. */
static inline int test_greedy_match(orion_llm *llm, float *logits, int n_vocab, int pos, const int32_t *ref, int n) {
    int same = 0;
    bool diverged = false;
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        if (!diverged && best == ref[i]) same++;
        else diverged = true;
        assert_int_equal(orion_llm_eval(llm, &best, 1, pos + i, logits, false), ORION_OK);
    }
    return same;
}

#endif /* ORION_TEST_GREEDY_H */
