# The large networks against 2LM (Fig. 8): about 650 GB each in the paper (VGG416 at batch 320,
# Inception v4 at 6144, ResNet-200 at 2560, DenseNet-264 at 3072), a 185 GB DRAM budget, static
# and synchronous plans against DRAM as a hardware cache of PMM (Intel Memory Mode).
#
# Our graphs' footprints at these batches: vgg416 666 GB, resnet200 654 GB, inception_v4
# 1063 GB, densenet264 846 GB (`autotm-graph info`; the paper's graphs differed in detail).
# A machine with less memory than the largest footprint cannot run them, so by default the
# kernels are timed at batch 8 and scaled (scaled:8) and every run is predicted from the profile
# (simulated); on a PMM server with room for them:
#   make reproduce SUITE=large SIMULATE= MEASURE_BATCH= PROFILE_ARGS="--slow-dir /mnt/pmem0"

NETWORKS := vgg416 inception_v4 resnet200 densenet264
$(foreach n,$(NETWORKS),$(eval ZOO_$(n) := $(n)))
BATCH_vgg416 := 320
BATCH_inception_v4 := 6144
BATCH_resnet200 := 2560
BATCH_densenet264 := 3072

LARGE_FAST_LIMIT ?= 185GB
FORMULATIONS :=
$(foreach n,$(NETWORKS),$(eval RATIOS_$(n) :=))
# Plans at the byte budget (plans/static.json, plans/synchronous.json) and 2LM at the same one.
BASELINES := static synchronous
$(foreach n,$(NETWORKS),$(eval TWO_LM_RATIOS_$(n) :=))
TWO_LM_AT_LIMIT := yes

SIMULATE ?= yes
MEASURE_BATCH ?= 8
PROFILE_ARGS ?=
OPTIMIZE_ARGS ?= --fast-limit $(LARGE_FAST_LIMIT) --time-limit 300
EXECUTE_ARGS ?= --iterations 3 --warmup 1
TWO_LM_ARGS ?= --iterations 3 --warmup 1
REPORT_ARGS ?=
