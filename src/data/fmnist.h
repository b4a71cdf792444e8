// Fashion-MNIST from the Debian package dataset-fashion-mnist: 60k training and
// 10k test images of 28x28 grey pixels with labels 0..9, read from the IDX.gz
// files and turned into the layout every sid network sees: [N, 1, 32, 32]
// floats in [-1, 1] (pixel/127.5 - 1), the 28x28 image centred with a 2-pixel
// border of -1 (black).
#ifndef SID_DATA_FMNIST_H
#define SID_DATA_FMNIST_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SID_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SID_FMNIST_INSTALL "sudo apt-get install dataset-fashion-mnist (or ./scripts/setup.sh)"
enum { SID_FMNIST_CLASSES = 10, SID_FMNIST_SRC = 28, SID_FMNIST_RES = 32, SID_FMNIST_PAD = 2 };

typedef struct {
    int n;           // images
    float *images;   // [n, 1, 32, 32] in [-1, 1], 64-byte aligned
    int32_t *labels; // [n], 0..9
} sid_fmnist;

// The folder of the IDX files: $SID_FMNIST_DIR when set, else SID_FMNIST_DIR.
const char *sid_fmnist_default_dir(void);
// Loads the training (train = 1: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) or test
// (t10k-*) split from dir (NULL: the default). A missing file fails with one line naming it and the
// install command; wrong shapes, label values >= 10 or an image/label count mismatch are errors too.
// limit > 0 keeps only the first `limit` images (faster tests); 0 keeps all.
int sid_fmnist_load(sid_fmnist *out, const char *dir, int train, int limit);
void sid_fmnist_free(sid_fmnist *d);
// 1 when both files of the split are present in dir (NULL: the default).
int sid_fmnist_available(const char *dir, int train);

// n images of 28x28 bytes -> [n, 1, 32, 32] floats in [-1, 1] with a -1 border.
void sid_fmnist_pad(float *dst, const uint8_t *src, int n);
// "T-shirt/top", "Trouser", ..., "Ankle boot"; NULL outside 0..9.
const char *sid_fmnist_class_name(int label);
// The label whose name matches, ignoring case and anything but letters and digits ("ankle boot",
// "Ankle-Boot"; "t-shirt" alone also names class 0), or -1.
int sid_fmnist_class_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
