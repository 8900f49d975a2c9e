"""PromptedViT: frozen backbone, prompt placement, trainable set."""
import pytest
import torch

from ltlab.models import PromptedViT


def test_prompt_length_zero_reproduces_backbone_features(tiny_vit):
    x = torch.randn(3, 3, 16, 16)
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=0, pool="cls").eval()
    tokens, n = m.tokens(x)
    assert torch.allclose(tokens, tiny_vit.forward_features(x), atol=1e-6)
    assert torch.allclose(m.features(x), tiny_vit.forward_features(x)[:, 0], atol=1e-6)


def _block_outputs(model, x):
    outs = []
    hooks = [b.register_forward_hook(lambda mod, i, o: outs.append(o[:, :5].detach().clone()))
             for b in model.backbone.blocks]
    model(x)
    for h in hooks:
        h.remove()
    return outs


def test_deep_prompt_at_block_i_only_influences_blocks_from_i(tiny_vit):
    torch.manual_seed(0)
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=3, mode="deep").eval()
    x = torch.randn(2, 3, 16, 16)
    before = _block_outputs(m, x)
    with torch.no_grad():
        m.prompts[1] += torch.randn_like(m.prompts[1])  # not a constant: LayerNorm would remove it
    after = _block_outputs(m, x)
    assert torch.equal(before[0], after[0])  # block 0 does not see prompt 1
    assert not torch.allclose(before[1], after[1]) and not torch.allclose(before[2], after[2])


def test_shallow_prompt_is_inserted_once(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=2, mode="shallow").eval()
    assert m.prompts.shape[0] == 1
    tokens, n = m.tokens(torch.randn(2, 3, 16, 16))
    assert tokens.shape[1] == n + 2


def test_only_prompts_and_head_get_gradients_and_backbone_stays_eval(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=3, head="linear")
    m.train()
    assert not m.backbone.training and m.training and m.dropout.training
    loss = m(torch.randn(4, 3, 16, 16)).sum()
    loss.backward()
    names = {n for n, p in m.named_parameters() if p.grad is not None}
    assert names == {"prompts", "head.weight", "head.bias"}
    assert all(p.grad is None for p in m.backbone.parameters())
    rep = m.parameter_report()
    assert rep["trainable"] == 3 * 3 * 32 + 4 * 32 + 4 and rep["total"] > rep["trainable"]


def test_cosine_head_is_scaled_cosine(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=1, head="cosine", head_scale=10.0).eval()
    logits = m(torch.randn(2, 3, 16, 16))
    assert logits.abs().max() <= 10.0 + 1e-5


def test_group_prompts_lpt_option(tiny_vit):
    m = PromptedViT(tiny_vit, num_classes=4, prompt_length=2, pool_size=5, group_prompt_length=3,
                    group_layers=2, top_k=2).eval()
    x = torch.randn(2, 3, 16, 16)
    out = m(x)
    assert out.shape == (2, 4) and m.last_key_similarity is not None
    group, _ = m.select_group_prompts(x)
    tokens, n = m.tokens(x, group)
    assert tokens.shape[1] == n + 2 + 3
    for layers in (4, 0):  # the tiny ViT has 3 blocks: more (or none) was silently clamped to what fits
        with pytest.raises(ValueError, match=rf"model.group_layers={layers}: the backbone has 3 blocks"):
            PromptedViT(tiny_vit, num_classes=4, pool_size=5, group_layers=layers)
    assert PromptedViT(tiny_vit, num_classes=4, group_layers=99).group_layers == 99  # no pool: not used, not checked


def test_rejects_models_without_class_token():
    with pytest.raises(ValueError, match="class token"):
        PromptedViT(torch.nn.Linear(2, 2), num_classes=2)


def test_bundled_backbone_builds_with_package_weights():
    from ltlab.config import ModelConfig
    from ltlab.models import build_model

    m = build_model(ModelConfig(prompt_length=2), num_classes=3)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    assert m.parameter_report()["trainable"] == 4 * 2 * 96 + 3 * 96


def test_timm_backbone_needs_weights_unless_asked_for_random():
    from ltlab.config import ModelConfig
    from ltlab.errors import DataError
    from ltlab.models import build_model

    with pytest.raises(DataError, match="model.pretrained=true"):
        build_model(ModelConfig(backbone="test_vit"), num_classes=3)
    with pytest.raises(DataError, match="model.checkpoint_path='/nope/weights.pt': the file does not exist"):
        build_model(ModelConfig(backbone="test_vit", checkpoint_path="/nope/weights.pt"), num_classes=3)
    m = build_model(ModelConfig(backbone="test_vit", checkpoint_path="none", prompt_length=1), num_classes=3)
    assert isinstance(m, PromptedViT) and m.backbone.embed_dim == 64


def test_timm_backbone_from_local_checkpoint(tmp_path):
    import timm

    from ltlab.config import ModelConfig
    from ltlab.models import build_model

    src = timm.create_model("test_vit", num_classes=0)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    m = build_model(ModelConfig(backbone="test_vit", checkpoint_path=str(tmp_path / "w.pt")), num_classes=3)
    assert torch.equal(m.backbone.cls_token, src.cls_token)
