// Text prompts for the built-in Fashion-MNIST teacher: the 10 classes, their synonyms, prompt
// templates split into a training set and a held-out evaluation set (distillation is evaluated
// on phrasings it never saw), the prompt files built from them, and the map back from any
// prompt to its class.
//
// The evaluation templates are new combinations of words that the training templates use
// (tested): the teacher's text encoder only ever learns the embeddings of tokens in its
// training prompts, so an unseen word would be noise to it, not a held-out phrasing.
//
// "" is the unconditional prompt (classifier-free guidance's c_empty, docs/sid.md). A
// prompt file can hold it as a line consisting of exactly "" (two double quotes), since empty
// lines are skipped.
#ifndef SID_DATA_PROMPTS_H
#define SID_DATA_PROMPTS_H
#include <stddef.h>

#include "core/rng.h"
#include "data/fmnist.h"  // SID_FMNIST_CLASSES and the class names, sid_fmnist_class_name

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SID_PROMPTS_TRAIN = 0, SID_PROMPTS_EVAL = 1 } sid_prompt_split;

// The synonyms prompts are generated with (e.g. "t-shirt", "tee", "top"), and the templates
// ("a photo of {a}": "{a}" takes the noun with its indefinite article, "a pair of" for the
// plural-only "trousers", "pants", "jeans"; "{}" the bare noun). NULL out of range.
int sid_fmnist_n_synonyms(int cls);
const char *sid_fmnist_synonym(int cls, int k);
int sid_fmnist_n_templates(sid_prompt_split split);
const char *sid_fmnist_template(sid_prompt_split split, int k);

// Template tmpl of split filled with synonym syn of class cls, into buf. The length, or -1
// with an error when an index is out of range or cap is too small.
int sid_fmnist_prompt(char *buf, size_t cap, sid_prompt_split split, int tmpl, int cls, int syn);
// A uniformly random (template, synonym) prompt of class cls from split (teacher training pairs
// each image of class cls with one). Consumes one draw of r; -1 as sid_fmnist_prompt.
int sid_fmnist_random_prompt(sid_rng *r, char *buf, size_t cap, sid_prompt_split split, int cls);

// The class a prompt names, by its words (case-insensitive; any non-alphanumeric character
// separates words, so "T-shirt", "t shirt" and "tshirt" agree; a plural "s"/"es" is accepted):
// the longest synonym starting at each word wins ("dress shirt" is a Shirt, "ankle boot" an
// Ankle boot), and a prompt naming two different classes, none, or "" gives -1.
int sid_prompt_class(const char *prompt);
// Whether prompt is the unconditional prompt: NULL, "" or only whitespace.
int sid_prompt_is_uncond(const char *prompt);

// A prompt file: UTF-8 text, one prompt per line; leading/trailing whitespace is trimmed, empty
// lines and lines starting with '#' are skipped, a line "" is the empty prompt.
typedef struct {
    int n;
    char **text;  // [n] prompts, each a separate NUL-terminated string
    int *cls;     // [n] sid_prompt_class of each (-1 for no class)
} sid_prompts;

// -1 with a one-line error naming the file: missing/unreadable, a line that is not valid UTF-8
// or holds a NUL byte, or no usable line at all. On failure p is left empty.
int sid_prompts_load(const char *path, sid_prompts *p);
void sid_prompts_free(sid_prompts *p);  // safe on a zeroed or freed p

// Writes dir/fmnist_train.txt and dir/fmnist_eval.txt (every template x every class x every
// synonym of the split, with a comment header), creating dir. These generate the shipped
// data/prompts/ files; -1 with an error on a write failure.
int sid_prompts_write_fmnist(const char *dir);

#ifdef __cplusplus
}
#endif

#endif
