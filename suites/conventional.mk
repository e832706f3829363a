# The paper's conventional networks (Fig. 7, 9, 11): Inception v4 at batch 1024, ResNet-200 at
# 512, VGG19 at 2048, DenseNet-264 at 512, with numa, static and synchronous placements at the
# paper's PMM:DRAM ratios, all-fast and all-slow, and 2LM at 4:1.
#
# Their all-fast footprints are tens to hundreds of GB (`autotm-graph info`). On a machine that
# holds them, run them for real (give the tier: PROFILE_ARGS/EXECUTE_ARGS += --slow-dir
# /mnt/pmem0 on PMM, or the emulated default). On one that does not:
#   make reproduce SUITE=conventional SIMULATE=yes MEASURE_BATCH=8
# times kernels at batch 8, scales them (provenance scaled:8) and predicts every run
# (provenance simulated), and every figure says so.

NETWORKS := inception_v4 resnet200 vgg19 densenet264
$(foreach n,$(NETWORKS),$(eval ZOO_$(n) := $(n)))
BATCH_inception_v4 := 1024
BATCH_resnet200 := 512
BATCH_vgg19 := 2048
BATCH_densenet264 := 512

FORMULATIONS := numa static synchronous
$(foreach n,$(NETWORKS),$(eval RATIOS_$(n) := 8x1 4x1 1x1))
BASELINES := all-fast all-slow
$(foreach n,$(NETWORKS),$(eval TWO_LM_RATIOS_$(n) := 4x1))

SIMULATE ?=
MEASURE_BATCH ?=
PROFILE_ARGS ?=
OPTIMIZE_ARGS ?= --time-limit 300
EXECUTE_ARGS ?= --iterations 3 --warmup 1 $(if $(filter yes,$(SIMULATE)),,--verify)
TWO_LM_ARGS ?= --iterations 3 --warmup 1
REPORT_ARGS ?=
