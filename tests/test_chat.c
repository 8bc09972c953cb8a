/*
 * test_chat.c — chat prompt formats against the published layouts of each
 * family (Llama 2's [INST]/<<SYS>>, Mistral's [INST], ChatML), template
 * detection from a model's Jinja markers, and special-piece tokenization:
 * "<s>" in a formatted prompt becomes BOS, not the letters '<', 's', '>'.
 */
#include "core/core.h"
#include "test_util.h"

#include <string.h>

orion_chat_template orion__chat_template_detect(const char *jinja, size_t len);

static const orion_chat_message conv[] = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "Hello."},
    {"user", "Name a color"},
};

static void expect(orion_chat_template t, const char *want) {
    char buf[512];
    size_t need = 0;
    assert_int_equal(orion_chat_format(t, conv, 4, true, buf, sizeof buf, &need), ORION_OK);
    if (strcmp(buf, want) != 0) fprintf(stderr, "got:  [%s]\nwant: [%s]\n", buf, want);
    assert_string_equal(buf, want);
    assert_int_equal(need, strlen(want));
}

static void test_formats(void **state) {
    (void)state;
    expect(ORION_CHAT_LLAMA2,
           "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Name a color [/INST]");
    expect(ORION_CHAT_MISTRAL, "<s>[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] Name a color [/INST]");
    expect(ORION_CHAT_CHATML, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                              "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nName a color<|im_end|>\n"
                              "<|im_start|>assistant\n");
    /* LLaVA-1.5's conv_vicuna_v1: sep " " after a user turn, "</s>" after an answer */
    expect(ORION_CHAT_VICUNA, "<s>Be brief. USER: Hi ASSISTANT: Hello.</s>USER: Name a color ASSISTANT:");
    /* too small a buffer: the needed size, truncated NUL-terminated text */
    char small[8];
    size_t need = 0;
    assert_int_equal(orion_chat_format(ORION_CHAT_CHATML, conv, 4, true, small, sizeof small, &need), ORION_ERR_RANGE);
    assert_true(need > sizeof small);
    assert_int_equal(strlen(small), 7);
    orion_chat_message bad = {"robot", "x"};
    assert_int_equal(orion_chat_format(ORION_CHAT_CHATML, &bad, 1, true, small, sizeof small, &need),
                     ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "robot"));
}

static void test_detect_and_names(void **state) {
    (void)state;
    const char *chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}";
    const char *llama2 = "{{ bos_token + '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}";
    const char *mistral = "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}";
    assert_int_equal(orion__chat_template_detect(chatml, strlen(chatml)), ORION_CHAT_CHATML);
    assert_int_equal(orion__chat_template_detect(llama2, strlen(llama2)), ORION_CHAT_LLAMA2);
    assert_int_equal(orion__chat_template_detect(mistral, strlen(mistral)), ORION_CHAT_MISTRAL);
    const char *vicuna = "{% for m in messages %}{% if m.role == 'user' %}USER: {{ m.content }} {% else %}"
                         "ASSISTANT: {{ m.content }}</s>{% endif %}{% endfor %}ASSISTANT:";
    assert_int_equal(orion__chat_template_detect(vicuna, strlen(vicuna)), ORION_CHAT_VICUNA);
    assert_int_equal(orion__chat_template_detect("", 0), ORION_CHAT_LLAMA2);
    orion_chat_template t;
    assert_int_equal(orion_chat_template_from_name("ChatML", &t), ORION_OK);
    assert_int_equal(t, ORION_CHAT_CHATML);
    assert_string_equal(orion_chat_template_name(ORION_CHAT_MISTRAL), "mistral");
    assert_int_equal(orion_chat_template_from_name("Vicuna", &t), ORION_OK);
    assert_int_equal(t, ORION_CHAT_VICUNA);
    assert_string_equal(orion_chat_template_name(ORION_CHAT_VICUNA), "vicuna");
    assert_int_equal(orion_chat_template_from_name("alpaca", &t), ORION_ERR_NOT_FOUND);
}

static void test_special_tokens(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) skip();
    char model[1024];
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.gguf", shared);
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(model, NULL, &llm), ORION_OK);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    const char *text = "<s>Hi there</s><s>again";
    int32_t a[64], b[64], na = 0, nb = 0;
    assert_int_equal(orion_llm_tokenize_special(llm, text, strlen(text), false, a, 64, &na), ORION_OK);
    /* BOS, "Hi there" (with its space prefix), EOS, BOS, "again" */
    assert_int_equal(a[0], in.bos);
    int32_t hi[16], nhi = 0, ag[16], nag = 0;
    assert_int_equal(orion_llm_tokenize(llm, "Hi there", 8, false, hi, 16, &nhi), ORION_OK);
    assert_int_equal(orion_llm_tokenize(llm, "again", 5, false, ag, 16, &nag), ORION_OK);
    assert_int_equal(na, 1 + nhi + 2 + nag);
    assert_memory_equal(a + 1, hi, sizeof(int32_t) * (size_t)nhi);
    assert_int_equal(a[1 + nhi], in.eos);
    assert_int_equal(a[2 + nhi], in.bos);
    assert_memory_equal(a + 3 + nhi, ag, sizeof(int32_t) * (size_t)nag);
    /* without special parsing the markers are plain text */
    assert_int_equal(orion_llm_tokenize(llm, text, strlen(text), false, b, 64, &nb), ORION_OK);
    for (int i = 0; i < nb; i++) assert_true(b[i] != in.bos && b[i] != in.eos);
    orion_llm_free(llm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_detect_and_names),
        cmocka_unit_test(test_special_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
