"""One small model per layer family. Each builder takes the Keras module (``keras`` or
``tf_keras``) and returns a built model; every builder works with both (a builder that raises
fails its tests)."""

from __future__ import annotations


def dense_mlp(K):
    L = K.layers
    i = K.Input((12,), name="x")
    h = L.Dense(16, activation="relu", name="d1")(i)
    h = L.Dropout(0.5, name="drop")(h)
    h = L.Dense(8, activation="tanh", use_bias=False, name="d2")(h)
    h = L.GaussianNoise(0.1, name="noise")(h)
    return K.Model(i, L.Dense(3, activation="softmax", name="out")(h))


def sequential_mlp(K):
    return K.Sequential([K.Input((6,)), K.layers.Dense(5, activation="sigmoid"),
                         K.layers.Dense(2)], name="seq")


def conv2d(K):
    L = K.layers
    i = K.Input((11, 13, 3), name="img")
    a = L.Conv2D(4, 3, strides=2, padding="same", name="c_same_s2")(i)
    b = L.Conv2D(4, (2, 4), strides=(2, 3), padding="same", name="c_asym")(i)
    c = L.Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu", name="c_dil")(i)
    c = L.Conv2D(4, 3, strides=2, padding="valid", name="c_valid")(c)
    g = L.Conv2D(6, 3, padding="same", name="c_pre")(i)
    g = L.Conv2D(4, 3, groups=2, strides=2, padding="same", name="c_groups")(g)
    return K.Model(i, [a, b, c, g])


def conv1d_3d(K):
    L = K.layers
    i = K.Input((10, 3), name="seq")
    a = L.Conv1D(4, 3, padding="causal", dilation_rate=2, name="causal")(i)
    a = L.Conv1D(5, 4, strides=3, padding="same", name="c1same")(a)
    j = K.Input((5, 6, 7, 2), name="vol")
    b = L.Conv3D(3, 3, strides=2, padding="same", name="c3")(j)
    return K.Model([i, j], [a, b])


def conv_transpose(K):
    L = K.layers
    i = K.Input((5, 6, 3), name="img")
    a = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="t_same")(i)
    b = L.Conv2DTranspose(4, 3, strides=2, padding="valid", name="t_valid")(i)
    c = L.Conv2DTranspose(2, (2, 3), strides=3, padding="valid", name="t_small_k")(i)
    d = L.Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=1, name="t_op")(i)
    s = K.Input((7, 3), name="seq")
    e = L.Conv1DTranspose(3, 3, strides=2, padding="same", name="t1")(s)
    v = K.Input((3, 4, 3, 2), name="vol")
    f = L.Conv3DTranspose(2, 2, strides=2, padding="same", name="t3")(v)
    return K.Model([i, s, v], [a, b, c, d, e, f])


def depthwise_separable(K):
    L = K.layers
    i = K.Input((9, 9, 4), name="img")
    a = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw")(i)
    b = L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, activation="relu",
                          name="sep")(i)
    s = K.Input((8, 3), name="seq")
    c = L.DepthwiseConv1D(3, padding="same", depth_multiplier=2, name="dw1")(s)
    d = L.SeparableConv1D(4, 3, strides=2, padding="same", name="sep1")(s)
    return K.Model([i, s], [a, b, c, d])


def normalizations(K):
    L = K.layers
    i = K.Input((6, 5, 8), name="img")
    a = L.Conv2D(8, 1, name="conv")(i)
    a = L.BatchNormalization(name="bn")(a)
    b = L.BatchNormalization(axis=1, name="bn_axis1")(i)
    c = L.LayerNormalization(name="ln")(a)
    d = L.LayerNormalization(axis=[1, 2, 3], name="ln_all")(i)
    e = L.GroupNormalization(groups=4, name="gn")(a)
    f = L.UnitNormalization(name="unit")(a)
    v = K.Input((7,), name="vec")
    g = L.BatchNormalization(center=False, name="bn_vec")(v)
    return K.Model([i, v], [b, c, d, e, f, g])


ACTIVATIONS_K3 = ["relu", "sigmoid", "tanh", "softmax", "softplus", "softsign", "selu", "elu",
                  "exponential", "hard_sigmoid", "hard_silu", "swish", "silu", "gelu", "relu6",
                  "leaky_relu", "log_softmax", "mish", "celu", "glu", "hard_shrink",
                  "soft_shrink", "hard_tanh", "tanh_shrink", "log_sigmoid", "sparse_plus",
                  "sparse_sigmoid", "squareplus", "sparsemax", "linear"]
ACTIVATIONS_K2 = ["relu", "sigmoid", "tanh", "softmax", "softplus", "softsign", "selu", "elu",
                  "exponential", "hard_sigmoid", "swish", "gelu", "relu6", "linear", "mish"]


def activations(K):
    L = K.layers
    names = ACTIVATIONS_K3 if K.__name__ == "keras" else ACTIVATIONS_K2
    i = K.Input((4, 6), name="x")
    outs = [L.Activation(n, name=f"act_{n}")(i) for n in names]
    return K.Model(i, outs)


def activation_layers(K):
    L = K.layers
    i = K.Input((5, 5, 4), name="img")
    h = L.Conv2D(4, 1, name="conv")(i)
    outs = [
        L.ReLU(name="relu")(h),
        L.ReLU(max_value=1.5, name="relu_max")(h),
        L.ReLU(threshold=0.3, name="relu_thr")(h),
        L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2, name="relu_all")(h),
        L.LeakyReLU(name="leaky")(h),
        L.PReLU(name="prelu")(h),
        L.PReLU(shared_axes=[1, 2], name="prelu_shared")(h),
        L.ELU(alpha=0.7, name="elu")(h),
        L.Softmax(name="softmax")(h),
        L.Softmax(axis=1, name="softmax_ax1")(h),
    ]
    return K.Model(i, outs)


def pooling(K):
    L = K.layers
    i = K.Input((9, 10, 3), name="img")
    h = L.Conv2D(3, 1, name="conv")(i)
    outs = [
        L.MaxPooling2D(3, 2, padding="same", name="max_same")(h),
        L.AveragePooling2D(3, 2, padding="same", name="avg_same")(h),
        L.AveragePooling2D(2, name="avg_valid")(h),
        L.MaxPooling2D((2, 3), strides=(1, 2), name="max_rect")(h),
        L.GlobalAveragePooling2D(name="gap")(h),
        L.GlobalMaxPooling2D(keepdims=True, name="gmp_keep")(h),
    ]
    s = K.Input((9, 2), name="seq")
    outs += [L.MaxPooling1D(2, padding="same", name="max1")(s),
             L.AveragePooling1D(3, strides=2, padding="same", name="avg1")(s),
             L.GlobalAveragePooling1D(name="gap1")(s)]
    v = K.Input((4, 5, 6, 2), name="vol")
    outs += [L.MaxPooling3D(2, padding="same", name="max3")(v),
             L.AveragePooling3D(2, name="avg3")(v), L.GlobalMaxPooling3D(name="gmp3")(v)]
    return K.Model([i, s, v], outs)


def reshaping(K):
    L = K.layers
    i = K.Input((4, 5, 3), name="img")
    h = L.Conv2D(3, 1, name="conv")(i)
    flat = L.Flatten(name="flat")(h)
    dense = L.Dense(4, name="dense_after_flatten")(L.Dropout(0.1, name="drop")(flat))
    r = L.Reshape((10, 6), name="reshape")(h)
    p = L.Permute((2, 1, 3), name="permute")(h)
    p2 = L.Conv2D(2, 1, name="conv_after_permute")(p)
    v = K.Input((5,), name="vec")
    rep = L.RepeatVector(3, name="repeat")(v)
    r2 = L.Reshape((-1, 1, 1), name="reshape_to_image")(v)
    r2 = L.Conv2D(2, 1, name="conv_after_reshape")(r2)
    return K.Model([i, v], [flat, dense, r, p2, rep, r2])


def merges(K):
    L = K.layers
    i = K.Input((4, 4, 3), name="img")
    a = L.Conv2D(3, 1, name="ca")(i)
    b = L.Conv2D(3, 1, name="cb")(i)
    outs = [L.Add(name="add")([a, b, i]), L.Subtract(name="sub")([a, b]),
            L.Multiply(name="mul")([a, b]), L.Average(name="avg")([a, b]),
            L.Maximum(name="max")([a, b]), L.Minimum(name="min")([a, i]),
            L.Concatenate(name="cat")([a, b, i]),
            L.Concatenate(axis=1, name="cat_h")([a, i])]
    u = K.Input((6,), name="u")
    w = K.Input((6,), name="w")
    outs += [L.Dot(axes=1, name="dot")([u, w]), L.Dot(axes=1, normalize=True, name="cos")([u, w])]
    s = K.Input((3, 4), name="s")
    t = K.Input((5, 4), name="t")
    outs.append(L.Dot(axes=(2, 2), name="dot_seq")([s, t]))
    return K.Model([i, u, w, s, t], outs)


def pad_crop_upsample(K):
    L = K.layers
    i = K.Input((5, 6, 2), name="img")
    h = L.Conv2D(2, 1, name="conv")(i)
    outs = [L.ZeroPadding2D(((1, 2), (0, 3)), name="pad2")(h),
            L.Cropping2D(((1, 0), (2, 1)), name="crop2")(h),
            L.UpSampling2D((2, 3), name="up2")(h),
            L.UpSampling2D(2, interpolation="bilinear", name="up2_bilinear")(h)]
    s = K.Input((6, 3), name="seq")
    outs += [L.ZeroPadding1D((2, 1), name="pad1")(s), L.Cropping1D((1, 2), name="crop1")(s),
             L.UpSampling1D(3, name="up1")(s)]
    v = K.Input((3, 4, 2, 2), name="vol")
    outs += [L.ZeroPadding3D(1, name="pad3")(v),
             L.Cropping3D(((1, 0), (1, 1), (0, 1)), name="crop3")(v),
             L.UpSampling3D(2, name="up3")(v)]
    return K.Model([i, s, v], outs)


def embedding_rnn(K):
    L = K.layers
    tok = K.Input((7,), dtype="int32", name="tokens")
    e = L.Embedding(11, 6, name="emb")(tok)
    outs = [L.SimpleRNN(5, return_sequences=True, name="srnn")(e),
            L.LSTM(4, name="lstm")(e),
            L.LSTM(3, return_sequences=True, go_backwards=True, name="lstm_back")(e),
            L.GRU(4, name="gru")(e),
            L.GRU(3, reset_after=False, return_sequences=True, name="gru_v1")(e),
            L.LSTM(2, recurrent_activation="hard_sigmoid", name="lstm_hard_sigmoid")(e)]
    seq, h, c = L.LSTM(3, return_state=True, name="lstm_state")(e)
    g_seq, g_h = L.GRU(3, return_sequences=True, return_state=True, go_backwards=True,
                       name="gru_state")(e)
    outs += [seq, h, c, g_seq, g_h]
    outs.append(L.SimpleRNN(3, activation="relu", name="srnn_init")(e, initial_state=[h]))
    return K.Model(tok, outs)


def wrappers(K):
    L = K.layers
    s = K.Input((6, 4), name="seq")
    outs = [L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi_lstm")(s),
            L.Bidirectional(L.GRU(2), merge_mode="sum", name="bi_gru")(s),
            L.TimeDistributed(L.Dense(5, activation="relu"), name="td_dense")(s)]
    v = K.Input((3, 6, 6, 2), name="frames")
    outs.append(L.TimeDistributed(L.Conv2D(3, 3, strides=2, padding="same"), name="td_conv")(v))
    return K.Model([s, v], outs)


def attention(K):
    L = K.layers
    q = K.Input((5, 8), name="q")
    v = K.Input((7, 6), name="v")
    outs = [L.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(q, v),
            L.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3, output_shape=5,
                                 name="mha_self")(q, q),
            L.MultiHeadAttention(num_heads=3, key_dim=2, name="mha_causal")(
                q, q, use_causal_mask=True),
            L.Attention(name="att")([q, L.Dense(8, name="proj")(v)]),
            L.Attention(use_scale=True, name="att_scaled")([q, q]),
            L.Attention(score_mode="concat", name="att_concat")([q, q]),
            L.Attention(score_mode="concat", use_scale=True, name="att_concat_scaled")([q, q])]
    return K.Model([q, v], outs)


def preprocessing(K):
    L = K.layers
    i = K.Input((8, 10, 3), name="img")
    outs = [L.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(i),
            L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 4.0], name="norm")(i),
            L.Resizing(5, 7, name="resize")(i),
            L.Resizing(12, 16, interpolation="nearest", name="resize_nn")(i),
            L.Resizing(5, 6, interpolation="nearest", name="resize_nn_down")(i),
            L.CenterCrop(4, 6, name="crop")(i),
            L.Identity(name="ident")(i)]
    return K.Model(i, outs)


def functional_graph(K):
    """Multiple inputs and outputs, a layer called twice, and a nested model."""
    L = K.layers
    a = K.Input((6,), name="a")
    b = K.Input((6,), name="b")
    shared = L.Dense(4, activation="relu", name="shared")
    sa, sb = shared(a), shared(b)
    inner_in = K.Input((4,), name="inner_in")
    inner = K.Model(inner_in, L.Dense(3, name="inner_dense")(
        L.Dense(5, activation="tanh", name="inner_hidden")(inner_in)), name="inner")
    ia, ib = inner(sa), inner(sb)
    merged = L.Concatenate(name="cat")([ia, ib])
    return K.Model([a, b], [L.Dense(2, name="head")(merged), L.Subtract(name="diff")([ia, ib])])


def nested_sequential(K):
    L = K.layers
    block = K.Sequential([K.Input((8, 8, 2)), L.Conv2D(3, 3, padding="same"),
                          L.BatchNormalization(), L.ReLU()], name="block")
    i = K.Input((8, 8, 2), name="img")
    h = block(i)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return K.Model(i, L.Dense(3, name="out")(h))


def channels_first(K):
    L = K.layers
    i = K.Input((3, 8, 9), name="img")
    h = L.Conv2D(4, 3, padding="same", data_format="channels_first", name="conv")(i)
    h = L.BatchNormalization(axis=1, name="bn")(h)
    h = L.MaxPooling2D(2, data_format="channels_first", name="pool")(h)
    f = L.Flatten(data_format="channels_first", name="flat")(h)
    g = L.GlobalAveragePooling2D(data_format="channels_first", name="gap")(h)
    return K.Model(i, [L.Dense(3, name="out")(f), g])


def small_cnn(K):
    """A classifier CNN: the layout test counts its Transposes."""
    L = K.layers
    i = K.Input((16, 16, 3), name="img")
    h = L.ZeroPadding2D(1, name="pad")(i)
    h = L.Conv2D(8, 3, strides=2, name="conv1")(h)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(6.0, name="relu1")(h)
    r = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    r = L.Conv2D(8, 1, name="pw")(r)
    h = L.Add(name="res")([h, r])
    c = L.Concatenate(name="cat")([h, L.Conv2D(4, 1, name="branch")(h)])
    h = L.MaxPooling2D(2, name="pool")(c)
    h = L.Flatten(name="flat")(h)
    return K.Model(i, L.Dense(5, activation="softmax", name="probs")(h))


def conv_bn_variants(K):
    """Conv->BatchNorm pairs that fold (plain, depthwise, separable, no conv bias) and ones
    that must not (activation in between, a second consumer, BatchNorm over another axis)."""
    L = K.layers
    i = K.Input((6, 7, 4), name="img")
    a = L.BatchNormalization(name="bn_a")(L.Conv2D(5, 3, padding="same", name="conv_a")(i))
    b = L.BatchNormalization(name="bn_b")(L.DepthwiseConv2D(3, name="dw_b")(i))
    c = L.BatchNormalization(name="bn_c")(L.SeparableConv2D(3, 1, use_bias=False,
                                                            name="sep_c")(i))
    d = L.BatchNormalization(name="bn_d")(L.Conv2D(4, 1, activation="relu", name="conv_d")(i))
    e_conv = L.Conv2D(4, 1, name="conv_e")(i)
    e = L.Add(name="add_e")([L.BatchNormalization(name="bn_e")(e_conv), e_conv])
    f = L.BatchNormalization(axis=1, name="bn_f")(L.Conv2D(4, 1, name="conv_f")(i))
    s = K.Input((8, 3), name="seq")
    g = L.BatchNormalization(name="bn_g")(L.Conv1D(2, 3, name="conv_g")(s))
    return K.Model([i, s], [a, b, c, d, e, f, g])


def operators(K):
    """Python operators on symbolic tensors: Keras 3 records ops, Keras 2 TFOpLambda layers."""
    L = K.layers
    i = K.Input((4, 4, 3), name="img")
    h = L.Conv2D(3, 1, name="conv")(i)
    a = (h + 3.0) * h
    b = a / 2.0 - h
    return K.Model(i, [b, L.Conv2D(2, 1, name="conv_after_ops")(b)])


CASES = {f.__name__: f for f in [
    dense_mlp, sequential_mlp, conv2d, conv1d_3d, conv_transpose, depthwise_separable,
    normalizations, activations, activation_layers, pooling, reshaping, merges,
    pad_crop_upsample, embedding_rnn, wrappers, attention, preprocessing, functional_graph,
    nested_sequential, channels_first, small_cnn, operators, conv_bn_variants]}
