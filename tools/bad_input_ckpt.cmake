# CLI tests: checkpoints, weights files and save targets that must be
# refused, each with its exit status and a one-line message naming the file
# and the field or tensor at fault. Included from tools/CMakeLists.txt;
# uses ctrain_cli_test, TD (the small data files) and the td fixture.
#
# A good checkpoint is trained first (ckpt_good); ctrain_badckpt then writes
# copies of it with one thing broken each, plus a FIFO (a directory where
# FIFOs cannot be made) to give as a file. Every file lives under the build
# tree; /dev/full is only ever looked at, never written.
if(CTRAIN_TESTS)
  add_executable(ctrain_badckpt ${CMAKE_CURRENT_SOURCE_DIR}/testdata/mkbadckpt.c)
  target_link_libraries(ctrain_badckpt PRIVATE ctrain_static m)
  set(CK ${CMAKE_CURRENT_BINARY_DIR}/testckpt)
  file(MAKE_DIRECTORY ${CK})
  set(CK_DATA "--data-dir ${TD}/good --hidden 32 --batch-size 16")

  ctrain_cli_test(ckpt_good "train ${CK_DATA} --epochs 2 --save ${CK}/good.safetensors --quiet"
    0 STDOUT "test accuracy" REQUIRES td SETUP ckpt_good)
  add_test(NAME ckpt_bad_files COMMAND ctrain_badckpt ${CK}/good.safetensors ${CK})
  set_tests_properties(ckpt_bad_files PROPERTIES FIXTURES_REQUIRED ckpt_good FIXTURES_SETUP ckpt_bad)

  # ckpt_test(name args rc stderr-regex): a test on the broken files.
  function(ckpt_test name args rc err)
    ctrain_cli_test(${name} "${args}" ${rc} STDERR "${err}" REQUIRES "ckpt_bad;td")
    # A FIFO that blocked the reader would hang: fail instead.
    set_tests_properties(${name} PROPERTIES TIMEOUT 120)
  endfunction()

  # A tensor of another dtype with the same byte count: refused by every
  # path that loads weights, not converted.
  ckpt_test(ckpt_resume_i32 "train ${CK_DATA} --resume ${CK}/i32.safetensors" 1
    "^ctrain: train: --resume: .*i32.safetensors.*'fc1.weight' is I32; parameter 'fc1.weight' needs a float")
  ckpt_test(ckpt_resume_i32_optim_state "train ${CK_DATA} --resume ${CK}/i32state.safetensors" 1
    "i32state.safetensors.*'optim.exp_avg.fc2.bias' is I32")
  ckpt_test(ckpt_init_from_i32 "train ${CK_DATA} --epochs 1 --init-from ${CK}/i32.safetensors" 1
    "^ctrain: train: --init-from: .*i32.safetensors.*'fc1.weight' is I32")
  ckpt_test(ckpt_eval_i32 "eval --checkpoint ${CK}/i32.safetensors --data-dir ${TD}/good" 1
    "^ctrain: eval: .*i32.safetensors.*'fc1.weight' is I32")
  # NaN weights: the file's tensor is named, no advice about learning rates.
  ckpt_test(ckpt_init_from_nan "train ${CK_DATA} --epochs 1 --init-from ${CK}/nan.safetensors" 1
    "^ctrain: train: --init-from: .*nan.safetensors.*'fc2.bias' holds NaN at element 0$")
  ckpt_test(ckpt_resume_nan "train ${CK_DATA} --resume ${CK}/nan.safetensors" 1
    "nan.safetensors.*'fc2.bias' holds NaN")
  # eval checks the whole file's weights before loading them (eval_checks.c)
  ckpt_test(ckpt_eval_nan "eval --checkpoint ${CK}/nan.safetensors --data-dir ${TD}/good" 1
    "nan.safetensors.*hold NaN in tensor 'fc2.bias'")

  # The model record: counts integral and in range, nothing after the JSON.
  ckpt_test(ckpt_eval_classes_huge "eval --checkpoint ${CK}/classes.safetensors --data-dir ${TD}/good" 1
    "classes.safetensors.*cli.model.*field 'classes' is 1[.0-9]*e\\+30, not an integer in 1 \\.\\. ")
  ckpt_test(ckpt_eval_hidden_fraction "eval --checkpoint ${CK}/hidden.safetensors --data-dir ${TD}/good" 1
    "hidden.safetensors.*cli.model.*field 'hidden' is 32\\.7")
  ckpt_test(ckpt_eval_gpt_layers_fraction "eval --checkpoint ${CK}/gptlayers.safetensors --data-dir ${TD}/good" 1
    "gptlayers.safetensors.*field 'n_layer' is 1\\.5")
  ckpt_test(ckpt_eval_model_trailing "eval --checkpoint ${CK}/modeltail.safetensors --data-dir ${TD}/good" 1
    "modeltail.safetensors.*cli.model.*not one JSON object")
  ckpt_test(ckpt_resume_options_trailing "train --resume ${CK}/optionstail.safetensors" 1
    "optionstail.safetensors.*cli.options.*not a JSON object")

  # The run's position: refused, not taken as a finished (or odd) run.
  ckpt_test(ckpt_resume_epoch_2p32 "train ${CK_DATA} --resume ${CK}/epoch.safetensors" 1
    "epoch.safetensors': metadata 'ctrain.epoch' is '4294967297', not an integer in 0 \\.\\. 4294967295")
  ckpt_test(ckpt_resume_epoch_fraction "train ${CK_DATA} --resume ${CK}/epochfrac.safetensors" 1
    "epochfrac.safetensors': metadata 'ctrain.epoch' is '2\\.5'")
  ckpt_test(ckpt_resume_step_mismatch "train ${CK_DATA} --resume ${CK}/step.safetensors" 1
    "step.safetensors': metadata 'ctrain.step' is 999, but epoch 2 ")
  ckpt_test(ckpt_resume_lr_inf "train ${CK_DATA} --resume ${CK}/lr.safetensors" 1
    "lr.safetensors': metadata 'ctrain.lr' is not a finite number")

  # A FIFO given as a file is refused at once (the reader used to block in
  # open() forever); where no FIFO could be made the file is a directory.
  ckpt_test(ckpt_resume_fifo "train ${CK_DATA} --resume ${CK}/fifo.safetensors" 1
    "fifo.safetensors' is (a FIFO|a directory), not a regular file")
  ckpt_test(ckpt_init_from_fifo "train ${CK_DATA} --epochs 1 --init-from ${CK}/fifo.safetensors" 1
    "fifo.safetensors' is (a FIFO|a directory), not a regular file")
  ckpt_test(ckpt_eval_fifo "eval --checkpoint ${CK}/fifo.safetensors --data-dir ${TD}/good" 1
    "fifo.safetensors' is (a FIFO|a directory), not a regular file")

  # --save: tried before the first step; never replaces what is not a file.
  ckpt_test(ckpt_save_to_fifo "train ${CK_DATA} --epochs 1 --save ${CK}/fifo.safetensors" 1
    "before training.*fifo.safetensors' is (a FIFO|a directory), not a regular file: refusing to replace it")
  ckpt_test(ckpt_save_missing_dir "train ${CK_DATA} --epochs 1 --save ${CK}/no/such/dir/x.safetensors" 1
    "before training.*no/such/dir/x.safetensors")
  if(EXISTS /dev/full)
    ckpt_test(ckpt_save_to_device "train ${CK_DATA} --epochs 1 --save /dev/full" 1
      "before training.*'/dev/full' is a character device, not a regular file: refusing to replace it")
  endif()

  # Options that would be ignored or hide what happened.
  ctrain_cli_test(ckpt_save_every_needs_save "train --save-every 1" 2
    STDERR "^ctrain: train: --save-every needs --save FILE")
  ctrain_cli_test(ckpt_strict_needs_init_from "train --strict" 2 STDERR "^ctrain: train: --strict is for --init-from")
  ckpt_test(ckpt_init_from_strict_partial "train ${CK_DATA} --epochs 1 --init-from ${CK}/partial.safetensors --strict" 1
    "^ctrain: train: --init-from: .*partial.safetensors.*1 parameter\\(s\\) not in the file: 'fc2.bias'")
  add_test(NAME ckpt_init_from_partial_quiet COMMAND ${CMAKE_COMMAND}
    -DPROGRAM=$<TARGET_FILE:ctrain> "-DARGS=train ${CK_DATA} --epochs 1 --init-from ${CK}/partial.safetensors --quiet"
    -DRC=0 "-DSTDERR_IF_OK=initialised 3 of 4 tensors from .*partial.safetensors \\(the others keep"
    -P ${CMAKE_CURRENT_SOURCE_DIR}/expect.cmake)
  set_tests_properties(ckpt_init_from_partial_quiet PROPERTIES FIXTURES_REQUIRED "ckpt_bad;td")
  set(CKCFG ${CMAKE_CURRENT_BINARY_DIR}/testckptcfg)
  file(WRITE ${CKCFG}/trailing.json "{\"epochs\": 1}\n{\"lr\": 5}\n")
  ctrain_cli_test(ckpt_config_trailing "train --config ${CKCFG}/trailing.json" 2
    STDERR "^ctrain: train: --config '.*trailing.json': unexpected text after the JSON object \\(at byte 14\\)")
  ctrain_cli_test(ckpt_lr_overflow "train ${CK_DATA} --epochs 1 --lr 1e308" 1
    STDERR "^ctrain: train: step 1: the schedule gives lr inf from the base lr 1e\\+308: the learning rate is too large"
    REQUIRES td)
endif()
