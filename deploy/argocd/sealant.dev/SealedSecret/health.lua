-- Argo CD health check for sealant.dev/SealedSecret, read from the status seal-controller
-- writes (kstatus conditions, docs/format.md "Status"). Tested by tests/e2e/tests/argocd_health.rs.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for seal-controller to report a status"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.metadata.generation ~= obj.status.observedGeneration then
  hs.status = "Progressing"
  hs.message = "Waiting for seal-controller to observe generation " .. obj.metadata.generation
  return hs
end
local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Reconciling" and condition.status == "True" then
      hs.status = "Progressing"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for seal-controller to report the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
else
  -- Ready=False without Stalled or Reconciling: written by a seal-controller before kstatus
  -- conditions; every such failure needs a person.
  hs.status = "Degraded"
  hs.message = ready.message
end
return hs
