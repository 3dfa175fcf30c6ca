-- lacos.loss: the training objectives (engine/loss.c). A loss object takes
-- the embeddings of one batch and returns the loss value and the gradient
-- with respect to those embeddings, which the model's backward pass takes.
-- `columns` names the training data a loss consumes (lacos.pairs kinds):
-- "pairs" for MNRL, "scored" for CoSENT, "labelled" for the classifier.
--
--   lacos.loss.mnrl{scale = 20, symmetric = false}   in-batch negatives (+ hard negatives)
--   lacos.loss.cosent{scale = 20}                     scored pairs
--   lacos.loss.softmax{labels = 3, dim = d, seed = 0} SBERT's NLI classifier (trains its own W, b)
local E = require "lacos.engine"
local T = require "lacos.tensor"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}
local loss_out = ffi.new("double[1]")

local function zeros_like(t) return T.zeros(t:size(), "f32") end

-- MultipleNegativesRankingLoss. loss:compute(anchors, candidates) where
-- candidates = positives followed by hard negatives ((1+k)·B rows).
function M.mnrl(opts)
  opts = util.options(opts, { scale = 20.0, symmetric = false }, "lacos.loss.mnrl")
  if type(opts.scale) ~= "number" or opts.scale <= 0 then error("lacos.loss.mnrl: scale must be a positive number", 2) end
  local self = { kind = "mnrl", scale = opts.scale, symmetric = opts.symmetric and true or false, columns = "pairs" }
  function self:compute(anchors, candidates)
    local da, dc = zeros_like(anchors), zeros_like(candidates)
    check(C.lacos_loss_mnrl(anchors.t, candidates.t, self.scale, self.symmetric and 1 or 0, loss_out, da.t, dc.t))
    return loss_out[0], da, dc
  end
  function self:describe() return ("MNRL (scale %g%s)"):format(self.scale, self.symmetric and ", symmetric" or "") end
  return self
end

-- CoSENTLoss over (u, v, score) triples.
function M.cosent(opts)
  opts = util.options(opts, { scale = 20.0 }, "lacos.loss.cosent")
  if type(opts.scale) ~= "number" or opts.scale <= 0 then error("lacos.loss.cosent: scale must be a positive number", 2) end
  local self = { kind = "cosent", scale = opts.scale, columns = "scored" }
  function self:compute(u, v, labels)
    local du, dv = zeros_like(u), zeros_like(v)
    local lab = T.is_tensor(labels) and labels or T.from(labels, "f32")
    check(C.lacos_loss_cosent(u.t, v.t, lab.t, self.scale, loss_out, du.t, dv.t))
    return loss_out[0], du, dv
  end
  function self:describe() return ("CoSENT (scale %g)"):format(self.scale) end
  return self
end

-- SBERT's softmax classifier over (u, v, |u-v|) with integer labels
-- (entailment 0, neutral 1, contradiction 2 by default). Its weight and bias
-- are trainable parameters: loss:parameters() lists them for the optimizer.
function M.softmax(opts)
  opts = util.options(opts, { labels = 3, dim = util.REQUIRED, seed = 0 }, "lacos.loss.softmax")
  local d, k = opts.dim, opts.labels
  -- nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  local bound = 1 / math.sqrt(3 * d)
  if type(d) ~= "number" or d < 1 or d ~= math.floor(d) then error("lacos.loss.softmax: dim must be a positive whole number (the model's hidden size)", 2) end
  if type(k) ~= "number" or k < 2 or k ~= math.floor(k) then error("lacos.loss.softmax: labels must be a whole number >= 2", 2) end
  local self = { kind = "softmax", columns = "labelled", n_labels = k, dim = d }
  self.W = T.rand({ k, 3 * d }, { seed = opts.seed, lo = -bound, hi = bound })
  self.b = T.rand({ k }, { seed = opts.seed + 1, lo = -bound, hi = bound })
  self.dW = T.zeros({ k, 3 * d })
  self.db = T.zeros({ k })
  -- The classifier's gradients are added into dW and db, times `weight`
  -- (default 1; the training loop passes 1/accumulation).
  function self:compute(u, v, labels, weight)
    local du, dv = zeros_like(u), zeros_like(v)
    local lab = T.is_tensor(labels) and labels or T.from(labels, "i32")
    local gW, gb = zeros_like(self.W), T.zeros({ k })
    check(C.lacos_loss_softmax(u.t, v.t, lab.t, self.W.t, self.b.t, loss_out, du.t, dv.t, gW.t, gb.t))
    if weight and weight ~= 1 then gW:mul_(weight); gb:mul_(weight) end
    self.dW:add_(gW)
    self.db:add_(gb)
    gW:free(); gb:free()
    return loss_out[0], du, dv
  end
  function self:parameters()
    return { { name = "classifier.weight", param = self.W, grad = self.dW },
             { name = "classifier.bias", param = self.b, grad = self.db } }
  end
  function self:describe() return ("softmax classifier over %d labels"):format(k) end
  return self
end

return M
