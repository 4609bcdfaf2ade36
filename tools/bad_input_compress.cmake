# CLI tests of compression (docs/compression.md): pruning and distillation
# flags that must be refused, each with its exit status and one line naming
# the flag or file at fault, nothing written; and the working paths on the
# small data (a pruned run, `ctrain prune`, the smaller model's eval, a
# distilled run). Included from tools/CMakeLists.txt; uses
# ctrain_cli_test, TD, REJ (rej/four.safetensors: an MLP of 4 classes) and
# the td fixture.
if(CTRAIN_TESTS)
  set(CMP ${CMAKE_CURRENT_BINARY_DIR}/testcompress)
  file(MAKE_DIRECTORY ${CMP})
  set(CMP_DATA "--data-dir ${TD}/good --batch-size 16 --quiet")

  # ---- bad command lines: exit 2, the flag named
  ctrain_cli_test(compress_sparsity_one "train --prune-sparsity 1" 2
    STDERR "^ctrain: train: --prune-sparsity wants a number in \\[0, 1\\), not '1'")
  ctrain_cli_test(compress_sparsity_negative "train --prune-sparsity -0.1" 2
    STDERR "^ctrain: train: --prune-sparsity wants a number in \\[0, 1\\)")
  ctrain_cli_test(compress_start_after_end "train --prune-sparsity 0.5 --prune-start 500 --prune-end 100" 2
    STDERR "^ctrain: train: --prune-start 500 is after --prune-end 100")
  ctrain_cli_test(compress_prune_flag_alone "train --prune-structure neuron" 2
    STDERR "^ctrain: train: the --prune-\\* options need --prune-sparsity S")
  ctrain_cli_test(compress_bad_structure "train --prune-sparsity 0.5 --prune-structure filter" 2
    STDERR "^ctrain: train: --prune-structure wants one of unstructured, neuron, channel")
  ctrain_cli_test(compress_alpha_alone "train --distill-alpha 0.5" 2
    STDERR "^ctrain: train: --distill-temperature and --distill-alpha need --distill-from TEACHER")
  ctrain_cli_test(compress_alpha_range "train --distill-from x.safetensors --distill-alpha 2" 2
    STDERR "^ctrain: train: --distill-alpha wants a number in \\[0, 1\\]")
  ctrain_cli_test(compress_prune_needs_out "prune --checkpoint x.safetensors" 2
    STDERR "^ctrain: prune: --checkpoint FILE and --out FILE are required")

  # ---- refused by the run: exit 1, nothing saved
  ctrain_cli_test(compress_nothing_to_prune
    "train ${CMP_DATA} --hidden none --epochs 1 --prune-sparsity 0.5 --prune-structure neuron --save ${CMP}/never1.safetensors"
    1 STDERR "^ctrain: train: prune: the model has nothing to prune: no hidden layer" REQUIRES td)
  ctrain_cli_test(compress_teacher_width
    "train ${CMP_DATA} --hidden 16 --epochs 1 --distill-from ${REJ}/four.safetensors --save ${CMP}/never2.safetensors"
    1 STDERR "^ctrain: train: distill: the teacher's output has 4 classes, the student's 10: they must be equally wide"
    REQUIRES td)
  ctrain_cli_test(compress_teacher_no_record
    "train ${CMP_DATA} --hidden 16 --epochs 1 --distill-from ${REJ}/ok.safetensors" 1
    STDERR "^ctrain: train: --distill-from '.*ok.safetensors': it has no model record" REQUIRES td)
  # Nothing was written by the refused runs.
  add_test(NAME compress_refused_wrote_nothing COMMAND ${CMAKE_COMMAND}
    -DFILES=${CMP}/never1.safetensors|${CMP}/never2.safetensors -P ${CMAKE_CURRENT_SOURCE_DIR}/absent.cmake)
  set_tests_properties(compress_refused_wrote_nothing PROPERTIES DEPENDS "compress_nothing_to_prune;compress_teacher_width")

  # ---- the working paths
  ctrain_cli_test(compress_train_unstructured
    "train ${CMP_DATA} --hidden 32 --epochs 3 --prune-sparsity 0.8 --prune-every 2 --save ${CMP}/sparse.safetensors"
    0 REQUIRES td SETUP cmp_sparse)
  ctrain_cli_test(compress_eval_sparsity "eval --checkpoint ${CMP}/sparse.safetensors --data-dir ${TD}/good" 0
    STDOUT "sparsity 79\\.98% of 2368 weights \\(exact zeros\\): fc1.weight [0-9.]+%, fc2.weight" REQUIRES cmp_sparse)
  ctrain_cli_test(compress_train_neuron
    "train ${CMP_DATA} --hidden 32,16 --epochs 3 --prune-sparsity 0.5 --prune-structure neuron --prune-scope layer --prune-every 2 --save ${CMP}/neuron.safetensors"
    0 REQUIRES td SETUP cmp_neuron)
  ctrain_cli_test(compress_prune_neurons
    "prune --checkpoint ${CMP}/neuron.safetensors --out ${CMP}/small.safetensors" 0
    STDOUT "^removed 24 hidden neurons \\(fc1 32 -> 16, fc2 16 -> 8\\); wrote " REQUIRES cmp_neuron SETUP cmp_small)
  ctrain_cli_test(compress_eval_small "eval --checkpoint ${CMP}/small.safetensors --data-dir ${TD}/good" 0
    STDOUT "^accuracy [0-9.]+% \\([0-9]+/32\\)" REQUIRES cmp_small)
  ctrain_cli_test(compress_init_from_small
    "train ${CMP_DATA} --hidden 16,8 --epochs 1 --init-from ${CMP}/small.safetensors --strict" 0 REQUIRES cmp_small)
  ctrain_cli_test(compress_prune_dense "prune --checkpoint ${CMP}/small.safetensors --out ${CMP}/smaller.safetensors" 1
    STDERR "^ctrain: prune: '.*small.safetensors' has nothing to prune: no hidden neuron has all-zero weights"
    REQUIRES cmp_small)
  # With batch norm: the neurons' statistics go too, the constant folded through them.
  ctrain_cli_test(compress_train_neuron_bn
    "train ${CMP_DATA} --hidden 32,16 --batchnorm --epochs 3 --prune-sparsity 0.5 --prune-structure neuron --prune-scope layer --prune-every 2 --save ${CMP}/neuron_bn.safetensors"
    0 REQUIRES td SETUP cmp_neuron_bn)
  ctrain_cli_test(compress_prune_neurons_bn
    "prune --checkpoint ${CMP}/neuron_bn.safetensors --out ${CMP}/small_bn.safetensors" 0
    STDOUT "^removed 24 hidden neurons \\(fc1 32 -> 16, fc2 16 -> 8\\); wrote " REQUIRES cmp_neuron_bn SETUP cmp_small_bn)
  ctrain_cli_test(compress_eval_small_bn "eval --checkpoint ${CMP}/small_bn.safetensors --data-dir ${TD}/good" 0
    STDOUT "^accuracy [0-9.]+% \\([0-9]+/32\\)" REQUIRES cmp_small_bn)
  ctrain_cli_test(compress_distill
    "train ${CMP_DATA} --hidden 8 --epochs 2 --distill-from ${CMP}/sparse.safetensors --distill-temperature 2 --distill-alpha 0.5 --metrics ${CMP}/distill.jsonl"
    0 REQUIRES cmp_sparse)
endif()
