# CLI tests of `ctrain quantize` and the int8 `ctrain eval`: the small data
# set (td fixture, ckpt_good's checkpoint), MNIST where the shared data is
# there (the accuracy and size target on a small MLP), and the inputs that
# must be refused with one line, a non-zero exit and nothing overwritten.
# Included from tools/CMakeLists.txt after bad_input_ckpt.cmake (CK, CK_DATA).
if(CTRAIN_TESTS)
  set(TQ ${CMAKE_CURRENT_BINARY_DIR}/testquant)
  file(MAKE_DIRECTORY ${TQ})
  function(quant_test name args rc regex)
    cmake_parse_arguments(Q "" "REQUIRES;SETUP" "" ${ARGN})
    if(rc STREQUAL "0")
      ctrain_cli_test(${name} "${args}" 0 STDOUT "${regex}" REQUIRES "${Q_REQUIRES}" SETUP "${Q_SETUP}")
    else()
      ctrain_cli_test(${name} "${args}" ${rc} STDERR "${regex}" REQUIRES "${Q_REQUIRES}" SETUP "${Q_SETUP}")
    endif()
  endfunction()

  ctrain_cli_test(quant_help "quantize --help" 0 STDOUT "usage: ctrain quantize --checkpoint FILE --out FILE")
  # The small data set: min/max and percentile calibration, then eval.
  quant_test(quant_small "quantize --checkpoint ${CK}/good.safetensors --out ${TQ}/good_q.safetensors --data-dir ${TD}/good --calib-batches 2 --batch-size 16"
    0 "^quantized 2 linear layers to int8 \\(calibration: minmax, 2 batches of 16\\)" REQUIRES "ckpt_good;td" SETUP quant_small)
  quant_test(quant_small_percentile "quantize --checkpoint ${CK}/good.safetensors --out ${TQ}/good_qp.safetensors --data-dir ${TD}/good --calib percentile --percentile 99.9"
    0 "calibration: percentile 99.9, " REQUIRES "ckpt_good;td")
  quant_test(quant_small_eval "eval --checkpoint ${TQ}/good_q.safetensors --data-dir ${TD}/good"
    0 "int8 +accuracy [0-9.]+% \\([0-9]+/[0-9]+\\) .*samples/s .*\nf32 +accuracy .*good.safetensors.*\nint8 - f32: [-+][0-9.]+ pp"
    REQUIRES "quant_small;td")
  quant_test(quant_small_eval_compare_missing "eval --checkpoint ${TQ}/good_q.safetensors --data-dir ${TD}/good --compare ${TQ}/none.safetensors"
    1 "^ctrain: eval: .*none.safetensors" REQUIRES "quant_small;td")

  # Quantization-aware training, then quantize and the int8 eval.
  quant_test(quant_qat_train "train ${CK_DATA} --epochs 2 --qat --save ${TQ}/qat.safetensors --quiet"
    0 "test accuracy" REQUIRES td SETUP quant_qat)
  quant_test(quant_qat_ptq "quantize --checkpoint ${TQ}/qat.safetensors --out ${TQ}/qat_q.safetensors --data-dir ${TD}/good --batch-size 16"
    0 "^quantized 2 linear layers" REQUIRES "quant_qat;td" SETUP quant_qat_q)
  quant_test(quant_qat_eval "eval --checkpoint ${TQ}/qat_q.safetensors --data-dir ${TD}/good"
    0 "int8 +accuracy .*\nf32 +accuracy " REQUIRES "quant_qat_q;td")
  quant_test(quant_bad_qat_cnn "train --model cnn --qat" 2 "^ctrain: train: --qat is for --model mlp")

  # Refused: one line, exit 1 (2 for the command line), nothing written.
  quant_test(quant_bad_calib_zero "quantize --checkpoint ${CK}/good.safetensors --out ${TQ}/zero.safetensors --calib-batches 0"
    2 "^ctrain: quantize: --calib-batches 0: calibration needs at least one batch")
  quant_test(quant_bad_percentile_alone "quantize --checkpoint a --out b --percentile 99"
    2 "^ctrain: quantize: --percentile is for --calib percentile")
  quant_test(quant_bad_out_is_input "quantize --checkpoint ${CK}/good.safetensors --out ${CK}/good.safetensors"
    2 "^ctrain: quantize: --out is the checkpoint itself")
  quant_test(quant_bad_requantize "quantize --checkpoint ${TQ}/good_q.safetensors --out ${TQ}/qq.safetensors --data-dir ${TD}/good"
    1 "^ctrain: quantize: '.*good_q.safetensors' is already an int8 model" REQUIRES "quant_small;td")
  quant_test(quant_bad_resume "train ${CK_DATA} --resume ${TQ}/good_q.safetensors"
    1 "^ctrain: train: --resume '.*good_q.safetensors': this is an int8 model written by 'ctrain quantize', for 'ctrain eval' only"
    REQUIRES "quant_small;td")
  quant_test(quant_bad_init_from "train ${CK_DATA} --epochs 1 --init-from ${TQ}/good_q.safetensors"
    1 "^ctrain: train: --init-from '.*good_q.safetensors': this is an int8 model" REQUIRES "quant_small;td")
  quant_test(quant_bad_data_shape "quantize --checkpoint ${CK}/good.safetensors --out ${TQ}/shape_q.safetensors --data csv --train-file ${TD}/good.csv"
    1 "^ctrain: quantize: " REQUIRES "ckpt_good;td")
  quant_test(quant_bad_eval_data_shape "eval --checkpoint ${TQ}/good_q.safetensors --data csv --test-file ${TD}/good.csv"
    1 "^ctrain: eval: '.*good_q.safetensors' takes 64 features per sample; the samples of .*good.csv have 2"
    REQUIRES "quant_small;td")
  # A failed quantize leaves the file at --out as it was.
  add_test(NAME quant_bad_keeps_out COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=quantize --checkpoint ${TQ}/good_q.safetensors --out ${TQ}/kept.safetensors --data-dir ${TD}/good"
    -DKEEP=${TQ}/kept.safetensors -P ${CMAKE_CURRENT_SOURCE_DIR}/quant_keep.cmake)
  set_tests_properties(quant_bad_keeps_out PROPERTIES FIXTURES_REQUIRED "quant_small;td")

  # A model that cannot be quantized: the ResNet.
  quant_test(quant_bad_resnet "quantize --checkpoint ${TD}/resnet.safetensors --out ${TQ}/resnet_q.safetensors --data-dir ${TD}/good"
    1 "^ctrain: quantize: '.*resnet.safetensors' cannot be quantized: only MLP and CNN models" REQUIRES "resnet_ckpt;td")

  if(EXISTS "${PROJECT_SOURCE_DIR}/../shared/data/mnist")
    # The CNN (30 steps on 2,000 images, about 80%): int8 convolutions too.
    add_test(NAME quant_cnn_ptq COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
      -DCHECKPOINT=${TD}/cnn.safetensors -DOUT=${TQ}/cnn_q.safetensors "-DQARGS=--calib-batches 5"
      "-DEARGS=--limit 1000" -DMAX_RATIO=0.3 -DMAX_PP=0.5 -P ${CMAKE_CURRENT_SOURCE_DIR}/quant_check.cmake)
    set_tests_properties(quant_cnn_ptq PROPERTIES FIXTURES_REQUIRED cnn_ckpt)
    # The target on a small MNIST MLP: within 0.3 pp of F32, file <= 0.3x.
    ctrain_cli_test(quant_mnist_train "train --hidden 128,64 --train-limit 10000 --epochs 2 --save ${TQ}/mnist.safetensors --quiet"
      0 STDOUT "^test accuracy 9[0-9]\\.[0-9]+%" SETUP quant_mnist)
    add_test(NAME quant_mnist_ptq COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
      -DCHECKPOINT=${TQ}/mnist.safetensors -DOUT=${TQ}/mnist_q.safetensors "-DQARGS=--calib-batches 10"
      "-DEARGS=" -DMAX_RATIO=0.3 -DMAX_PP=0.3 -P ${CMAKE_CURRENT_SOURCE_DIR}/quant_check.cmake)
    set_tests_properties(quant_mnist_ptq PROPERTIES FIXTURES_REQUIRED quant_mnist)
    add_test(NAME quant_mnist_ptq_percentile COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
      -DCHECKPOINT=${TQ}/mnist.safetensors -DOUT=${TQ}/mnist_qp.safetensors
      "-DQARGS=--calib-batches 5 --calib percentile" "-DEARGS=--batch-size 500" -DMAX_RATIO=0.3 -DMAX_PP=0.3
      -P ${CMAKE_CURRENT_SOURCE_DIR}/quant_check.cmake)
    set_tests_properties(quant_mnist_ptq_percentile PROPERTIES FIXTURES_REQUIRED quant_mnist)
  endif()
endif()
