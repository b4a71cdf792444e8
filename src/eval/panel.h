// The evaluation panel: every metric of a set of N generated Fashion-MNIST images against the 10k
// test images, in each feature space given (the shipped CNN classifier and the MLP of
// models/features-mlp, two networks of different architecture trained apart), each next to its
// real-vs-real floor at the same N (the first N training images scored the same way):
//
//   per space  FID and KID (eval/metrics.h; against all test images), precision, recall, density and
//              coverage with k = 3 (against the first N test images: the k-NN radii need equal sizes),
//              and alignment, the fraction the network classifies as the prompted class
//   pixels     mean intensity, contrast and high-frequency share of the generated set, the test set
//              and the floor set
//
// Images are scored as the PNG writer saves them (eval/eval.h's quantisation).
#ifndef SID_EVAL_PANEL_H
#define SID_EVAL_PANEL_H
#include <cJSON.h>

#include "eval/classifier.h"
#include "eval/fid.h"
#include "eval/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SID_PANEL_MAX_SPACES = 4, SID_PANEL_K = 3 };

typedef struct {
    double fid, kid, kid_se, alignment;
    sid_prdc prdc;
} sid_panel_scores;

typedef struct {
    const char *name;
    sid_panel_scores gen, floor;  // alignment of the floor: the network's accuracy on those images
} sid_panel_space;

typedef struct {
    int n, n_test, n_prdc, n_spaces;
    sid_panel_space space[SID_PANEL_MAX_SPACES];
    sid_pixel_stats pix_gen, pix_test, pix_floor;
} sid_panel;

// What stays the same between evaluations: the networks, the test set's features and statistics,
// and the training images the floors are made of.
typedef struct {
    int n_spaces;
    const sid_classifier *net[SID_PANEL_MAX_SPACES];
    const char *name[SID_PANEL_MAX_SPACES];
    int n_test, n_train;
    float *test_feat[SID_PANEL_MAX_SPACES];  // [n_test, 128] each
    sid_gauss test_gauss[SID_PANEL_MAX_SPACES];
    sid_kid_set test_kid[SID_PANEL_MAX_SPACES];
    float *train_imgs;                       // the first n_train training images
    int32_t *train_labels;
    sid_pixel_stats pix_test;
} sid_panel_ref;

// Loads the test set (its first max_test images; 0: all 10k) and the first max_n training images of
// data_dir (NULL: the default) and scores the test set in every space. About 10 s on 2 cores.
int sid_panel_ref_init(sid_panel_ref *r, const sid_classifier *const *nets, const char *const *names, int n_spaces,
                       const char *data_dir, int max_n, int max_test);
// The panel's two shipped spaces: "cnn" (the classifier) and "mlp" (models/features-mlp), all 10k test images.
int sid_panel_ref_init_shipped(sid_panel_ref *r, const sid_classifier *cnn, const sid_classifier *mlp,
                               const char *data_dir, int max_n);
void sid_panel_ref_free(sid_panel_ref *r);

// N images [N, 1, 32, 32] in [-1, 1] with the class each was prompted with (NULL: no alignment);
// 10 <= N <= the ref's n_train.
int sid_panel_eval(const sid_panel_ref *r, const float *imgs, const int *prompted_class, int N, sid_panel *out);

// Loads the second feature network (an MLP classifier folder), with an error that says how to make one.
int sid_panel_load_mlp(sid_classifier *c, const char *dir);

// The panel as a JSON object ({"n": .., "<space>": {...}, "pixels": {...}}), and as one line of text
// (the caller frees it).
cJSON *sid_panel_json(const sid_panel *p);
char *sid_panel_json_text(const sid_panel *p);

#ifdef __cplusplus
}
#endif

#endif
