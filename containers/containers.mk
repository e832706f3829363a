# containers.mk: build the per-tool images, and say how each workflow stage is run.
# Included by the root Makefile; it also works on its own (make -f containers/containers.mk ...).
#
#   make images                    every image: five CPU images and the CUDA variants of profile
#                                  and execute (tags autotm-T:VERSION and autotm-T:latest, and
#                                  autotm-T:VERSION-cuda and autotm-T:latest-cuda)
#   make images-cpu                the five CPU images only (no multi-GB CUDA base to pull)
#   make images-cuda               the two CUDA variants only
#   make image-graph               one image; image-profile-cuda for a CUDA variant
#   make reproduce RUNNER=docker   every stage runs in its image, over the same files
#   make print-RUN_execute RUNNER=docker VARIANT=cuda    show the command a stage runs with
#
# RUN_graph, RUN_profile, RUN_optimize, RUN_execute and RUN_report are what the workflow's rules
# call: .venv/bin/autotm-T when RUNNER=local (the default), `docker run ... autotm-T:VERSION` when
# RUNNER=docker, safe to expand any number of times (in a recipe, or through $(eval $(call ...))).
# Under docker the repository root is mounted at /data and is the working directory, so the
# rules must name files by paths relative to it (not absolute, not outside it).
#
# Knobs (command line or environment):
#   RUNNER                local | docker
#   VARIANT               cpu | cuda: cuda runs profile and execute in their CUDA images, with
#                         DOCKER_GPU_FLAGS (default --gpus all); the other stages stay on CPU
#   DOCKER_RUN_FLAGS      added to every stage's docker run
#   DOCKER_RUN_FLAGS_T    added to stage T only, e.g.
#                         DOCKER_RUN_FLAGS_execute='-v /mnt/pmem0:/mnt/pmem0' (fsdax PMM),
#                         '--device /dev/dax0.0' (devdax), '--cap-add SYS_NICE' (NUMA/CXL)
#   DOCKER                docker, or a compatible client (podman)
#   IMAGE_PREFIX          registry/namespace prefix of the image names, e.g. registry.example/x/
#   DOCKER_BUILD_FLAGS    added to every docker build (--pull, --build-arg UV_VERSION=..., ...)
#   PYTHON_IMAGE          base of the CPU images (default in the Dockerfiles: python 3.11 slim)
#   CUDA_IMAGE            base of the CUDA images (default: nvidia/cuda 12.6 runtime, Ubuntu 24.04)
#   SOURCE_URL, REVISION  OCI labels; default from git (credentials stripped from the URL)

# The root Makefile and reproduce.mk may both include this file: read it once.
ifndef AUTOTM_CONTAINERS_MK
AUTOTM_CONTAINERS_MK := 1

AUTOTM_CONTAINERS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
AUTOTM_CONTEXT := $(patsubst %/,%,$(dir $(AUTOTM_CONTAINERS_DIR)))

AUTOTM_TOOLS := graph profile optimize execute report
AUTOTM_GPU_TOOLS := profile execute

RUNNER ?= local
VARIANT ?= cpu
DOCKER ?= docker
IMAGE_PREFIX ?=
DOCKER_RUN_FLAGS ?=
DOCKER_BUILD_FLAGS ?=
DOCKER_GPU_FLAGS ?= --gpus all

ifeq ($(filter $(RUNNER),local docker),)
$(error RUNNER must be local or docker, not '$(RUNNER)')
endif
ifeq ($(filter $(VARIANT),cpu cuda),)
$(error VARIANT must be cpu or cuda, not '$(VARIANT)')
endif

# Each image is tagged with its own package's version, read from its pyproject.toml.
autotm_version = $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' \
	$(AUTOTM_CONTEXT)/tools/$(1)/pyproject.toml | head -n 1)
$(foreach t,$(AUTOTM_TOOLS),$(eval IMAGE_VERSION_$(t) := $(call autotm_version,$(t))))

# The image each stage runs in: the CUDA tag for profile and execute when VARIANT=cuda.
autotm_gpu_stage = $(and $(filter cuda,$(VARIANT)),$(filter $(1),$(AUTOTM_GPU_TOOLS)))
autotm_image = $(IMAGE_PREFIX)autotm-$(1):$(IMAGE_VERSION_$(1))$(if \
	$(call autotm_gpu_stage,$(1)),-cuda)
$(foreach t,$(AUTOTM_TOOLS),$(eval IMAGE_$(t) = $$(call autotm_image,$(t))))

# The host user owns what a stage writes; the repository root is /data, the working directory.
# The user and group are resolved here, once, rather than left as $$(id -u) for the shell: the
# workflow's rules are built with $(eval $(call ...)), which expands a command once more than a
# plain recipe does, and a $$ would not survive it.
ifeq ($(RUNNER),docker)
AUTOTM_UID := $(shell id -u)
AUTOTM_GID := $(shell id -g)
endif
AUTOTM_DOCKER_RUN = $(DOCKER) run --rm -u $(AUTOTM_UID):$(AUTOTM_GID) -v "$(CURDIR)":/data -w /data
autotm_docker_cmd = $(AUTOTM_DOCKER_RUN) $(if $(call autotm_gpu_stage,$(1)),$(DOCKER_GPU_FLAGS)) \
	$(DOCKER_RUN_FLAGS) $(DOCKER_RUN_FLAGS_$(1)) $(IMAGE_$(1))

ifeq ($(RUNNER),docker)
$(foreach t,$(AUTOTM_TOOLS),$(eval RUN_$(t) = $$(strip $$(call autotm_docker_cmd,$(t)))))
else
$(foreach t,$(AUTOTM_TOOLS),$(eval RUN_$(t) = .venv/bin/autotm-$(t)))
endif

# OCI labels. A git URL may carry a token (https://user:token@host/...): never bake it into a label.
AUTOTM_GIT_URL ?= $(shell git -C $(AUTOTM_CONTEXT) remote get-url origin 2>/dev/null)
autotm_public_url = $(if $(1),$(shell printf '%s\n' '$(1)' \
	| sed -E -e 's|^git@([^:]+):|https://\1/|' -e 's|://[^/@]+@|://|' -e 's|\.git$$||'))
SOURCE_URL ?= $(call autotm_public_url,$(AUTOTM_GIT_URL))
REVISION ?= $(shell git -C $(AUTOTM_CONTEXT) rev-parse HEAD 2>/dev/null)

# $(call autotm_build,TOOL,DOCKERFILE,TAG_SUFFIX,BASE_ARG): one docker build, from the repo root.
autotm_build = $(strip $(DOCKER) build -f $(AUTOTM_CONTAINERS_DIR)/$(1)/$(2) \
	--build-arg VERSION=$(IMAGE_VERSION_$(1)) \
	--build-arg "SOURCE_URL=$(SOURCE_URL)" --build-arg "REVISION=$(REVISION)" \
	$(if $($(4)),--build-arg "$(4)=$($(4))") $(DOCKER_BUILD_FLAGS) \
	-t $(IMAGE_PREFIX)autotm-$(1):$(IMAGE_VERSION_$(1))$(3) \
	-t $(IMAGE_PREFIX)autotm-$(1):latest$(3) $(AUTOTM_CONTEXT))

AUTOTM_IMAGE_TARGETS := $(addprefix image-,$(AUTOTM_TOOLS))
AUTOTM_CUDA_IMAGE_TARGETS := $(addsuffix -cuda,$(addprefix image-,$(AUTOTM_GPU_TOOLS)))

.PHONY: containers-help images images-cpu images-cuda $(AUTOTM_IMAGE_TARGETS) \
	$(AUTOTM_CUDA_IMAGE_TARGETS)

# On its own (make -f containers/containers.mk), print the usage rather than build everything.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := containers-help
endif

containers-help:
	@sed -n '/^#   make/,/^#$$/p' $(AUTOTM_CONTAINERS_DIR)/containers.mk | sed 's/^# \{0,1\}//'

images: images-cpu images-cuda

images-cpu: $(AUTOTM_IMAGE_TARGETS)

images-cuda: $(AUTOTM_CUDA_IMAGE_TARGETS)

$(AUTOTM_IMAGE_TARGETS): image-%:
	$(call autotm_build,$*,Dockerfile,,PYTHON_IMAGE)

$(AUTOTM_CUDA_IMAGE_TARGETS): image-%-cuda:
	$(call autotm_build,$*,Dockerfile.cuda,-cuda,CUDA_IMAGE)

# make print-VAR shows a variable as a recipe would see it, e.g. print-RUN_report RUNNER=docker.
print-%:
	@:$(info $($*))

endif # AUTOTM_CONTAINERS_MK
