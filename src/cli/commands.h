// Subcommands of the sid program; each takes the arguments after its name.
#ifndef SID_COMMANDS_H
#define SID_COMMANDS_H

int cmd_selftest(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_convert_unet(int argc, char **argv);
int cmd_train_teacher(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_train_classifier(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_model(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval_coco(int argc, char **argv);
int cmd_fid_ref_stats(int argc, char **argv);

#endif
