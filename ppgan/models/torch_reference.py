"""Independent PyTorch implementations of the reference networks, written from the layer lists in
the reference notes (section 4) in the original Wav2Lip's torch style and with its module names,
not from the Paddle code. tests/test_convert_weights.py checks the Paddle nets against them;
tools/benchmark_wav2lip.py times the generator against them (the original's layers in torch).

Needs torch (the `test` extra); nothing in the library imports this module.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as TF


class TConv(tnn.Module):
    def __init__(self, cin, cout, k, s, p, residual=False):
        super().__init__()
        self.conv_block = tnn.Sequential(tnn.Conv2d(cin, cout, k, s, p), tnn.BatchNorm2d(cout))
        self.act = tnn.ReLU()
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


class TNonNorm(tnn.Module):
    def __init__(self, cin, cout, k, s, p):
        super().__init__()
        self.conv_block = tnn.Sequential(tnn.Conv2d(cin, cout, k, s, p))
        self.act = tnn.LeakyReLU(0.01)

    def forward(self, x):
        return self.act(self.conv_block(x))


class TUp(tnn.Module):
    def __init__(self, cin, cout, k, s, p, op=0):
        super().__init__()
        self.conv_block = tnn.Sequential(tnn.ConvTranspose2d(cin, cout, k, s, p, op),
                                         tnn.BatchNorm2d(cout))
        self.act = tnn.ReLU()

    def forward(self, x):
        return self.act(self.conv_block(x))


def R(c):
    return TConv(c, c, 3, 1, 1, residual=True)


def torch_audio_encoder(n_res_256):
    return tnn.Sequential(
        TConv(1, 32, 3, 1, 1), R(32), R(32),
        TConv(32, 64, 3, (3, 1), 1), R(64), R(64),
        TConv(64, 128, 3, 3, 1), R(128), R(128),
        TConv(128, 256, 3, (3, 2), 1), *[R(256) for _ in range(n_res_256)],
        TConv(256, 512, 3, 1, 0), TConv(512, 512, 1, 1, 0))


class TorchWav2Lip(tnn.Module):
    def __init__(self):
        super().__init__()
        S = tnn.Sequential
        self.face_encoder_blocks = tnn.ModuleList([
            S(TConv(6, 16, 7, 1, 3)),
            S(TConv(16, 32, 3, 2, 1), R(32), R(32)),
            S(TConv(32, 64, 3, 2, 1), R(64), R(64), R(64)),
            S(TConv(64, 128, 3, 2, 1), R(128), R(128)),
            S(TConv(128, 256, 3, 2, 1), R(256), R(256)),
            S(TConv(256, 512, 3, 2, 1), R(512)),
            S(TConv(512, 512, 3, 1, 0), TConv(512, 512, 1, 1, 0))])
        self.audio_encoder = torch_audio_encoder(1)
        self.face_decoder_blocks = tnn.ModuleList([
            S(TConv(512, 512, 1, 1, 0)),
            S(TUp(1024, 512, 3, 1, 0), R(512)),
            S(TUp(1024, 512, 3, 2, 1, 1), R(512), R(512)),
            S(TUp(768, 384, 3, 2, 1, 1), R(384), R(384)),
            S(TUp(512, 256, 3, 2, 1, 1), R(256), R(256)),
            S(TUp(320, 128, 3, 2, 1, 1), R(128), R(128)),
            S(TUp(160, 64, 3, 2, 1, 1), R(64), R(64))])
        self.output_block = S(TConv(80, 32, 3, 1, 1), tnn.Conv2d(32, 3, 1, 1, 0), tnn.Sigmoid())

    def forward(self, audio, faces):
        batch = audio.size(0)
        temporal = faces.dim() > 4
        if temporal:  # unroll time into the batch, time-major
            audio = torch.cat([audio[:, i] for i in range(audio.size(1))], dim=0)
            faces = torch.cat([faces[:, :, i] for i in range(faces.size(2))], dim=0)
        feats, x = [], faces
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(audio)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        x = self.output_block(x)
        if temporal:
            x = torch.stack(torch.split(x, batch, dim=0), dim=2)
        return x


class TorchSyncNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.face_encoder = tnn.Sequential(
            TConv(15, 32, 7, 1, 3),
            TConv(32, 64, 5, (1, 2), 1), R(64), R(64),
            TConv(64, 128, 3, 2, 1), R(128), R(128), R(128),
            TConv(128, 256, 3, 2, 1), R(256), R(256),
            TConv(256, 512, 3, 2, 1), R(512), R(512),
            TConv(512, 512, 3, 2, 1), TConv(512, 512, 3, 1, 0), TConv(512, 512, 1, 1, 0))
        self.audio_encoder = torch_audio_encoder(2)

    def forward(self, audio, faces):
        a = self.audio_encoder(audio).view(audio.size(0), -1)
        f = self.face_encoder(faces).view(faces.size(0), -1)
        return TF.normalize(a, p=2, dim=1), TF.normalize(f, p=2, dim=1)


class TorchDisc(tnn.Module):
    def __init__(self):
        super().__init__()
        S = tnn.Sequential
        self.face_encoder_blocks = tnn.ModuleList([
            S(TNonNorm(3, 32, 7, 1, 3)),
            S(TNonNorm(32, 64, 5, (1, 2), 2), TNonNorm(64, 64, 5, 1, 2)),
            S(TNonNorm(64, 128, 5, 2, 2), TNonNorm(128, 128, 5, 1, 2)),
            S(TNonNorm(128, 256, 5, 2, 2), TNonNorm(256, 256, 5, 1, 2)),
            S(TNonNorm(256, 512, 3, 2, 1), TNonNorm(512, 512, 3, 1, 1)),
            S(TNonNorm(512, 512, 3, 2, 1), TNonNorm(512, 512, 3, 1, 1)),
            S(TNonNorm(512, 512, 3, 1, 0), TNonNorm(512, 512, 1, 1, 0))])
        self.binary_pred = S(tnn.Conv2d(512, 1, 1, 1, 0), tnn.Sigmoid())

    def forward(self, faces):
        if faces.dim() > 4:
            faces = torch.cat([faces[:, :, i] for i in range(faces.size(2))], dim=0)
        x = faces[:, :, faces.size(2) // 2:]
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).view(len(x), -1)


class TorchS3FDWeights(tnn.Module):
    """Only the parameter layout of face_alignment's S3FD (no forward needed)."""

    def __init__(self):
        super().__init__()
        vgg = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
               ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
               ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
               ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)]
        for name, cin, cout in vgg:
            setattr(self, name, tnn.Conv2d(cin, cout, 3, 1, 1))
        self.fc6 = tnn.Conv2d(512, 1024, 3, 1, 3)
        self.fc7 = tnn.Conv2d(1024, 1024, 1)
        self.conv6_1, self.conv6_2 = tnn.Conv2d(1024, 256, 1), tnn.Conv2d(256, 512, 3, 2, 1)
        self.conv7_1, self.conv7_2 = tnn.Conv2d(512, 128, 1), tnn.Conv2d(128, 256, 3, 2, 1)
        for name, c, scale in [("conv3_3_norm", 256, 10.), ("conv4_3_norm", 512, 8.),
                               ("conv5_3_norm", 512, 5.)]:
            holder = tnn.Module()
            holder.weight = tnn.Parameter(torch.full((c,), scale))
            setattr(self, name, holder)
        heads = [("conv3_3_norm", 256, 4), ("conv4_3_norm", 512, 2), ("conv5_3_norm", 512, 2),
                 ("fc7", 1024, 2), ("conv6_2", 512, 2), ("conv7_2", 256, 2)]
        for src, c, n_conf in heads:
            setattr(self, f"{src}_mbox_conf", tnn.Conv2d(c, n_conf, 3, 1, 1))
            setattr(self, f"{src}_mbox_loc", tnn.Conv2d(c, 4, 3, 1, 1))
