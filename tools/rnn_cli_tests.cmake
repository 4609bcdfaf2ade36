# CLI tests of the recurrent language models (docs/language_models.md,
# "Recurrent networks"): an lstm, gru and rnn trained on the tiny text (and
# tokens), resumed, evaluated and sampled from; then bad input, each one
# line, a non-zero exit and no file written. Included from
# tools/CMakeLists.txt after the GPT's tests; uses ctrain_cli_test, LMD and
# its files (tiny.txt; good.bin from the lmtd fixture).
if(CTRAIN_TESTS)
  set(RNN_TINY "--hidden-size 16 --block-size 16 --batch-size 4 --eval-batches 4 --device cpu")
  set(RNN_TEXT "--data text --train-file ${LMD}/tiny.txt")
  set(RNN_OK "^val_loss [0-9.]+  train_loss [0-9.]+  after")

  ctrain_cli_test(cli_rnn_lstm_train
    "train ${RNN_TEXT} --model lstm --num-layers 2 --dropout 0.1 ${RNN_TINY} --steps 20 --save ${LMD}/lstm.safetensors --quiet"
    0 STDOUT "${RNN_OK} 20 steps" SETUP rnn_ckpt)
  ctrain_cli_test(cli_rnn_gru_bidirectional "train ${RNN_TEXT} --model gru --bidirectional ${RNN_TINY} --steps 5 --quiet"
    0 STDOUT "${RNN_OK} 5 steps")
  ctrain_cli_test(cli_rnn_tokens "train --data tokens --train-file ${LMD}/good.bin --vocab-size 40 --model rnn ${RNN_TINY} --steps 5 --quiet"
    0 STDOUT "${RNN_OK} 5 steps" REQUIRES lmtd)
  ctrain_cli_test(cli_rnn_header "train ${RNN_TEXT} --model lstm --num-layers 2 ${RNN_TINY} --steps 1"
    0 STDOUT "lstm 2 layers x 16, block 16, vocab [0-9]+, [0-9]+ parameters")
  ctrain_cli_test(cli_rnn_resume "train --resume ${LMD}/lstm.safetensors --steps 30 --save ${LMD}/lstm30.safetensors --quiet"
    0 STDOUT "${RNN_OK} 30 steps" REQUIRES rnn_ckpt)
  ctrain_cli_test(cli_rnn_eval "eval --checkpoint ${LMD}/lstm.safetensors --train-file ${LMD}/tiny.txt --eval-batches 4"
    0 STDOUT "^val_loss [0-9.]+  \\(4 batches of 4 x 16 tokens" REQUIRES rnn_ckpt)
  ctrain_cli_test(cli_rnn_generate "generate --checkpoint ${LMD}/lstm.safetensors --prompt hello --tokens 20 --device cpu"
    0 STDOUT "^hello" REQUIRES rnn_ckpt)

  # Bad input.
  ctrain_cli_test(cli_rnn_needs_text "train --model lstm" 2 STDERR "^ctrain: train: --model lstm needs --data text or tokens")
  ctrain_cli_test(cli_rnn_zero_hidden "train ${RNN_TEXT} --model lstm --hidden-size 0" 2
    STDERR "^ctrain: train: --hidden-size wants an integer from 1 to [0-9]+, not '0'")
  ctrain_cli_test(cli_rnn_zero_layers "train ${RNN_TEXT} --model gru --num-layers 0" 2
    STDERR "^ctrain: train: --num-layers wants an integer from 1 to [0-9]+, not '0'")
  ctrain_cli_test(cli_rnn_zero_length "train ${RNN_TEXT} --model rnn --block-size 0" 2
    STDERR "^ctrain: train: --block-size wants an integer from 1 to [0-9]+, not '0'")
  # PyTorch's names with other shapes (an lstm's weights into a gru of the
  # same width): refused by name, and --save never written.
  add_test(NAME cli_rnn_wrong_shapes COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=train ${RNN_TEXT} --model gru ${RNN_TINY} --steps 1 --init-from ${LMD}/lstm.safetensors --save ${LMD}/never.safetensors"
    -DRC=1 "-DSTDERR=^ctrain: train: --init-from: .*tensor 'rnn.weight_ih_l0' has shape \\[64, 16\\], parameter 'rnn.weight_ih_l0' has shape \\[48, 16\\]"
    -DABSENT=${LMD}/never.safetensors -P ${CMAKE_CURRENT_SOURCE_DIR}/rnn_expect_absent.cmake)
  set_tests_properties(cli_rnn_wrong_shapes PROPERTIES FIXTURES_REQUIRED rnn_ckpt)
endif()

# Stateful training (--stateful, truncated backpropagation through time).
if(CTRAIN_TESTS)
  ctrain_cli_test(cli_rnn_stateful_header "train ${RNN_TEXT} --model lstm --stateful ${RNN_TINY} --steps 2"
    0 STDOUT "lstm 1 layer x 16, .* \\| batch 4 x 16 tokens \\| stateful \\| 2 steps")
  ctrain_cli_test(cli_rnn_stateful_gru "train ${RNN_TEXT} --model gru --stateful --num-layers 2 ${RNN_TINY} --steps 3 --quiet"
    0 STDOUT "${RNN_OK} 3 steps")
  add_test(NAME cli_rnn_stateful_resume COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=train ${RNN_TEXT} --model lstm --stateful ${RNN_TINY} --eval-every 4 --schedule constant" -DDIR=${LMD} -DFIRST=5 -DSTEPS=9
    -P ${CMAKE_CURRENT_SOURCE_DIR}/rnn_stateful_resume.cmake)
  # Bad input: usage errors (exit 2), and streams that do not fit (exit 1).
  ctrain_cli_test(cli_rnn_stateful_gpt "train ${RNN_TEXT} --model gpt --stateful" 2
    STDERR "^ctrain: train: --stateful is for --model lstm, gru or rnn, not gpt \\(a GPT has no state to carry\\)")
  ctrain_cli_test(cli_rnn_stateful_default_gpt "train ${RNN_TEXT} --stateful" 2
    STDERR "^ctrain: train: --stateful is for --model lstm, gru or rnn, not gpt")
  ctrain_cli_test(cli_rnn_stateful_bidirectional "train ${RNN_TEXT} --model lstm --stateful --bidirectional" 2
    STDERR "^ctrain: train: --stateful and --bidirectional exclude each other")
  ctrain_cli_test(cli_rnn_stateful_not_text "train --model mlp --stateful" 2
    STDERR "^ctrain: train: --stateful is for --data text or tokens")
  add_test(NAME cli_rnn_stateful_short_streams COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=train ${RNN_TEXT} --model rnn --stateful --hidden-size 8 --block-size 16 --batch-size 200 --steps 1 --device cpu --save ${LMD}/never_sf.safetensors"
    -DRC=1 "-DSTDERR=^ctrain: train: ct_trainer_new_lm: .*tiny.txt \\(training split\\): 1836 tokens make 200 streams of 9 tokens, too few for one window of block size 16 each"
    -DABSENT=${LMD}/never_sf.safetensors -P ${CMAKE_CURRENT_SOURCE_DIR}/rnn_expect_absent.cmake)
endif()
